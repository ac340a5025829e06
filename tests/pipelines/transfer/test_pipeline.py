"""The transfer pipeline's shape, as built from the project's conf."""

from headstart.pipelines.transfer import create_pipeline


def inputs_of(pipeline, strategy: str) -> set[str]:
    return next(n for n in pipeline.nodes if n.name == f"{strategy}.train_target_models").inputs


def test_only_strategies_that_use_source_or_unlabelled_target_images_get_them():
    pipeline = create_pipeline()
    for strategy in ("coral", "dann"):
        assert {"source_train", "target_unlabelled"} <= set(inputs_of(pipeline, strategy))
    assert "source_train" in inputs_of(pipeline, "importance_weighting")
    for strategy in ("scratch", "finetune_full", "l2_sp", "lwf", "pixels_knn"):
        assert not {"source_train", "target_unlabelled"} & set(inputs_of(pipeline, strategy)), strategy
