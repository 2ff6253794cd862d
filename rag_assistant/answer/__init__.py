"""Answering: retrieval, the answerability policy, the offline (extractive) and generated
answerers, citations and support judges, conversations, the chat-model client and prompts."""
