"""The console's texts, one module per language (``MESSAGES``: key -> text with ``{field}``s).

A new text goes into every module with the same key; ``test_finance_web_i18n`` fails otherwise.
Pages of the finance sections use keys of their own prefix (``runs.``, ``exceptions.``, ...).
"""
