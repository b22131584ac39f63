"""Measuring retrieval (BEIR, SQuAD, folder CSV) and answer quality against labelled questions."""

from almanac.core.evaluation.eval import EvalReport, EvalSet, evaluate
from almanac.core.evaluation.eval_answers import AnswerReport, evaluate_answers

__all__ = ["AnswerReport", "EvalReport", "EvalSet", "evaluate", "evaluate_answers"]
