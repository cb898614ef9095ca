"""nemotron-cascade: the Nemotron-Cascade recipe (curation, two-stage SFT, cascaded RL) as a Kedro project.

Importing the package pins torch's CPU kernels to one instruction set (:mod:`nemotron_cascade.numerics`)
so that seeded CPU runs reproduce across machines; ``NEMOTRON_CASCADE_CPU_ISA=native`` opts out.
"""

from nemotron_cascade.numerics import pin_cpu_kernels

pin_cpu_kernels()
