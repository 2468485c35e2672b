"""A long, DSPy-like system prompt: what two programs taking turns on one model each send."""

from __future__ import annotations

__all__ = ["long_system_prompt"]


def long_system_prompt(task: str) -> str:
    """About 200 tokens of instructions for `task`, in the shape DSPy's adapters write them."""
    return (
        "Your input fields are:\n1. `question` (str): a question a user asked the assistant.\n"
        "Your output fields are:\n1. `answer` (str): the response the user will read.\n"
        "All interactions will be structured in the following way, with the appropriate values "
        "filled in.\n\nInputs will have the following structure:\n\n[[ ## question ## ]]\n"
        "{question}\n\nOutputs will be a JSON object with the following fields.\n\n"
        '{\n  "answer": "{answer}"\n}\n\nIn adhering to this structure, your objective is: '
        f"{task}. Be precise, be brief, do not repeat the question, and never invent facts you "
        "are not sure of. If the question is ambiguous, answer its most likely meaning. Use plain "
        "words a beginner understands, and keep the answer to a single short sentence."
    )
