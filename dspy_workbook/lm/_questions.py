"""Short factual questions with one clear answer: the local model's test and benchmark set."""

from __future__ import annotations

__all__ = ["FACT_QUESTIONS"]

FACT_QUESTIONS: list[str] = [
    "What is the capital of France?",
    "Who wrote Hamlet?",
    "What is 7 plus 5?",
    "Which planet is the largest in the solar system?",
    "What color is the sky on a clear day?",
    "How many legs does a spider have?",
    "What is the boiling point of water in Celsius?",
    "Which animal is known as the king of the jungle?",
    "What is the chemical symbol for gold?",
    "How many days are in a week?",
    "What is the opposite of hot?",
    "Which ocean is the largest?",
    "What language is spoken in Spain?",
    "How many continents are there?",
    "What do bees make?",
    "What is the freezing point of water in Celsius?",
    "Who painted the Mona Lisa?",
    "What is the square root of 81?",
    "What gas do plants absorb from the air?",
    "What is the tallest mountain on Earth?",
]
