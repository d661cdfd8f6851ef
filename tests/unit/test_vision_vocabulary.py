"""The ImageNet vocabulary and the mapping from probabilities to tags."""

from __future__ import annotations

import pytest
from autotag.vision.vocabulary import (
    ImageClass,
    Vocabulary,
    VocabularyPolicy,
    imagenet_vocabulary,
    labels_for,
)

SMALL = Vocabulary(
    classes=(
        ImageClass("n02123045", "tabby", ("cat", "mammal", "animal"), "animal", "label"),
        ImageClass("n02123159", "tiger cat", ("cat", "mammal", "animal"), "animal", "label"),
        ImageClass("n02085620", "Chihuahua", ("dog", "mammal", "animal"), "animal", "label"),
        ImageClass("n09428293", "seashore", ("shore", "landscape"), "nature", "scene"),
        ImageClass("n04350905", "suit", ("clothing", "person"), "clothing", "label"),
    ),
    concept_categories={
        "cat": "animal",
        "dog": "animal",
        "mammal": "animal",
        "animal": "animal",
        "shore": "nature",
        "landscape": "nature",
        "clothing": "clothing",
        "person": "person",
    },
)


def named(labels):
    return {label.name: label for label in labels}


def test_parent_confidence_is_the_sum_of_its_classes():
    labels = named(labels_for([0.5, 0.3, 0.1, 0.05, 0.05], SMALL, VocabularyPolicy.create(), floor=0.0))
    assert labels["cat"].confidence == pytest.approx(0.8)
    assert labels["mammal"].confidence == pytest.approx(0.9)
    assert labels["animal"].confidence == pytest.approx(0.9)
    assert labels["tabby"].confidence == pytest.approx(0.5)
    assert labels["tabby"].parents == ("cat", "mammal", "animal")
    assert labels["cat"].kind == "concept"
    assert labels["tabby"].kind == "label"
    assert labels["seashore"].kind == "scene"
    assert labels["cat"].category == "animal"
    assert labels["suit"].category == "clothing"
    assert labels["person"].category == "person"


def test_ordered_best_first_and_floor_drops_the_unlikely():
    labels = labels_for([0.5, 0.3, 0.1, 0.05, 0.05], SMALL, VocabularyPolicy.create(), floor=0.2)
    assert [label.name for label in labels] == ["animal", "mammal", "cat", "tabby", "tiger cat"]


def test_top_classes_limits_classes_but_not_concepts():
    policy = VocabularyPolicy.create(top_classes=1)
    labels = named(labels_for([0.5, 0.3, 0.1, 0.05, 0.05], SMALL, policy, floor=0.0))
    assert "tabby" in labels
    assert "tiger cat" not in labels
    assert labels["cat"].confidence == pytest.approx(0.8)  # concepts sum over every class


def test_allow_deny_and_rename():
    probabilities = [0.5, 0.3, 0.1, 0.05, 0.05]
    only = labels_for(probabilities, SMALL, VocabularyPolicy.create(allow=["Cat", "dog"]), floor=0.0)
    assert {label.name for label in only} == {"cat", "dog"}
    denied = named(labels_for(probabilities, SMALL, VocabularyPolicy.create(deny=["mammal"]), floor=0.0))
    assert "mammal" not in denied
    assert denied["tabby"].parents == ("cat", "animal")
    renamed = named(
        labels_for(probabilities, SMALL, VocabularyPolicy.create(rename={"tabby": "cat:tabby"}), floor=0.0)
    )
    assert "cat:tabby" in renamed
    assert "tabby" not in renamed


def test_renames_that_collide_keep_the_more_confident():
    policy = VocabularyPolicy.create(rename={"tabby": "cat"})
    labels = labels_for([0.5, 0.3, 0.1, 0.05, 0.05], SMALL, policy, floor=0.0)
    cats = [label for label in labels if label.name == "cat"]
    assert len(cats) == 1
    assert cats[0].confidence == pytest.approx(0.8)


def test_parents_can_be_turned_off():
    policy = VocabularyPolicy.create(parents=False)
    labels = labels_for([0.5, 0.3, 0.1, 0.05, 0.05], SMALL, policy, floor=0.0)
    assert all(label.kind != "concept" for label in labels)


def test_probability_count_must_match():
    with pytest.raises(ValueError, match="5 classes"):
        labels_for([1.0], SMALL, VocabularyPolicy.create(), floor=0.0)


def test_the_shipped_vocabulary():
    vocabulary = imagenet_vocabulary()
    assert len(vocabulary.classes) == 1000
    ids = [c.id for c in vocabulary.classes]
    assert ids == sorted(ids)  # the model's output order
    by_name = {c.name: c for c in vocabulary.classes}
    assert by_name["tabby"].parents[0] == "cat"
    assert "animal" in by_name["tabby"].parents
    assert {"coffee", "drink"} <= set(by_name["espresso"].parents)
    assert "food" not in by_name["espresso"].parents  # WordNet's beverage ⊂ food (nutrient)
    assert "food" in by_name["pizza"].parents
    assert "person" in by_name["scuba diver"].parents
    assert "person" in by_name["suit"].parents  # worn by people in the photos
    assert by_name["seashore"].kind == "scene"
    assert "container" not in by_name["sports car"].parents  # WordNet's wheeled vehicle ⊂ container
    assert len(by_name) == 1000  # friendly names are unique
