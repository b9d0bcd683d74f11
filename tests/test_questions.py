"""The questions each notebook ends with: three to five, answered from the run's own artefacts (never typed), hidden
until clicked, and an answer whose field an artefact lacks says so while the others stand."""

import copy

import jupytext
import pytest

import picollm_helpers as h
from conftest import ROOT

A = h.read_artefact
QUESTIONS = {
    "01_sanity_check": lambda: h.sanity_check_questions(A("sanity_check")),
    "02_kgram_design_comparison": lambda: h.kgram_questions(A("kgram_comparison"), A("kgram_real_text"), 3e-7),
    "03_transformer_build_up": lambda: h.transformer_questions(A("fastest_learner"), A("step_breakdown"), A("writer"),
                                                               cache_difference=2e-6),
    "04_nucleus_sampling": lambda: h.sampling_questions(A("next_token"), A("sampling_diversity")),
    "05_custom_data": lambda: h.own_text_questions(A("own_text")),
    "06_overfitting": lambda: h.overfitting_questions(A("overfitting")),
    "07_hyperparameter_study": lambda: h.hyperparameter_questions(A("hyperparameters"), A("hyperparameter_rates")),
}


@pytest.mark.parametrize("notebook", QUESTIONS)
def test_every_notebook_ends_with_three_to_five_questions_answered_from_its_artefacts(notebook):
    last = jupytext.read(ROOT / "notebooks" / f"{notebook}.py").cells[-2:]
    assert last[0].source.startswith("## Questions you may be asked") and ".questions(" not in last[0].source
    assert last[1].source.startswith("h.") and "_questions(" in last[1].source
    questions = QUESTIONS[notebook]()
    assert 3 <= len(questions) <= 5
    for item in questions:
        assert item.answer and "Not measured" not in item.answer, f"{item.asked}: {item.answer}"


def test_the_answers_read_the_artefact_rather_than_typed_numbers():
    sanity = copy.deepcopy(A("sanity_check"))
    sanity["results"]["initial_loss"] = 12.345
    sanity["results"]["epoch_losses"] = [12.345, 11.111, 10.5]
    answers = " ".join(item.answer for item in h.sanity_check_questions(sanity))
    assert "12.345" in answers and "12.345 -> 11.111 -> 10.500" in answers
    study = copy.deepcopy(A("overfitting"))
    for run in study["results"]["runs"]:
        run["turning_step"] = 77
    assert "at step 77 of" in h.overfitting_questions(study).items[0].answer


def test_an_answer_whose_field_is_missing_says_so_and_the_others_stand():
    race = copy.deepcopy(A("fastest_learner"))
    race["results"]["lessons"] = [item for item in race["results"]["lessons"] if "KV cache" not in item["claim"]]
    writer = copy.deepcopy(A("writer"))
    del writer["results"]["sampled"]
    answers = [item.answer for item in h.transformer_questions(race, A("step_breakdown"), writer)]
    assert answers[2].startswith("Not measured in this run") and "a lesson about KV cache" in answers[2]
    assert "has no `results.sampled`" in answers[3]
    assert not answers[0].startswith("Not measured") and not answers[1].startswith("Not measured")
    empty = h.hyperparameter_questions({"config": {}, "results": {"runs": [], "lessons": []}})
    assert all(item.answer.startswith("Not measured in this run") for item in empty)


def test_answers_are_hidden_until_their_question_is_clicked():
    questions = QUESTIONS["01_sanity_check"]()
    page = questions._repr_html_()
    assert page.count("<details>") == len(questions) and "<details open" not in page
    for item in questions:
        assert item.answer.split(":")[0] not in repr(questions)
        assert item.asked in repr(questions)
