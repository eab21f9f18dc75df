"""salience.model: the local LLM and attention steering on marked spans.

>>> from model import LocalModel, steer
>>> lm = LocalModel.load()                       # the embedded SmolLM2-135M-Instruct
>>> lm.generate(conversation, method="uniform")  # conversation from markup.parse_messages
"""
