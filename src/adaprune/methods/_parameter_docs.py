"""One-line parameter descriptions for methods whose class docstring has no `Parameters:` block yet
(adapruner, whose file other work is changing; semdedup's engine options). `registry.parameter_docs` prefers the
docstring; move these into the docstrings when those files settle."""

from __future__ import annotations

PARAMETER_NOTES: dict[str, dict[str, str]] = {
    "adapruner": {
        "warmup_epochs": "epochs of plain training on every sample before the mask moves",
        "epochs": "pruning epochs, over which alpha rises from alpha_start to alpha_max",
        "max_extra_epochs": "most epochs at alpha_max waiting for |r - c_r| <= epsilon",
        "alpha_start": "sigmoid scale of the mask, w = sigmoid(alpha * m), at the first pruning epoch",
        "alpha_max": "sigmoid scale reached at the last pruning epoch",
        "lambda_scale": "s in lambda = s * |r - c_r|, the weight of the compression term",
        "epsilon": "tolerance on |r - c_r| (kept fraction of the mask against the budget) that ends training",
        "mask_init": "initial mask value m (1.0: every sample starts kept)",
        "mask_lr": "SGD step on the mask (its gradients are O(1/batch), hence large)",
        "mask_momentum": "SGD momentum of the mask",
        "mask_weight_decay": "weight decay on the mask",
        "sel_eps": "epsilon inside L_sel = w * -log(CE + sel_eps)",
        "binarize": "budget: keep exactly the budget ranked by m; threshold: keep w > 0.5 (the paper's rule)",
    },
    "semdedup": {
        "engine": "local (this process) or ray: what maps the per-chunk and per-cluster stages",
        "ray_address": "address of a running Ray cluster for engine=ray (None: start a local one)",
        "work_dir": "folder for completion records of each stage, so a killed run resumes",
    },
}
