"""IFEval-style checkers behind :mod:`nemotron_cascade.rewards.instruction_following`.

Modules: :mod:`.text` (words, sentences, paragraphs), :mod:`.language` (language and case),
:mod:`.keywords`, :mod:`.length`, :mod:`.detectable`, :mod:`.startend` (checkers by IFEval family),
:mod:`.kwargs` (field validators) and :mod:`.registry` (the id → checker table and its validation).
Every checker is ``check(text, **kwargs) -> bool`` on a non-empty final answer.
"""
