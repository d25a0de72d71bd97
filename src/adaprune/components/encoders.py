"""The encoders (`adaprune.embed.encoders`): what clustering and deduplication embed samples with.
`auto` (identity for vectors, pixels otherwise) is resolved before the lookup."""

from adaprune.components import register_component
from adaprune.params import AnyString, Interval

_E = "adaprune.embed.encoders"
register_component("encoder", "identity", f"{_E}:IdentityEncoder", summary="the samples as they are")
register_component("encoder", "standardized", f"{_E}:StandardizedEncoder",
                   summary="each feature standardised by the training split")
register_component("encoder", "pixels", f"{_E}:PixelsEncoder", spec={"dim": Interval(int, 1, None)}, arg="dim",
                   syntax="pixels[:DIM]", summary="a PCA of the pixels to DIM (64) dimensions")
register_component("encoder", "centred", f"{_E}:CentredPixelsEncoder", spec={"dim": Interval(int, 1, None)},
                   arg="dim", syntax="centred[:DIM]",
                   summary="pixels after a shift onto the foreground's centre of mass (moved copies)")
register_component("encoder", "model", f"{_E}:ModelEncoder", spec={"epochs": Interval(int, 1, None)},
                   arg="epochs", syntax="model[:EPOCHS]", summary="features of the task's model trained EPOCHS (10)")
register_component("encoder", "contrastive", f"{_E}:ContrastiveEncoder", spec={"epochs": Interval(int, 1, None)},
                   arg="epochs", syntax="contrastive[:EPOCHS]", summary="a SimCLR-style encoder trained EPOCHS")
register_component("encoder", "clip", f"{_E}:ClipEncoder", spec={"name": AnyString("a CLIP model folder or name")},
                   arg="name", syntax="clip:PATH_OR_NAME", summary="CLIP image features (needs adaprune[clip])")
register_component("encoder", "minilm", f"{_E}:MiniLMEncoder", summary="MiniLM sentence embeddings of text")
