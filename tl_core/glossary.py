"""The words Transfer Lab uses that a newcomer may not know, once each: the Glossary page lists them, and a page
shows a term's entry as the `help=` of the control or caption where the term first appears (`help_for`).

A term is what the pages write (its key); `TERMS` keeps the glossary's order, from the idea to the methods."""
from __future__ import annotations

# term → what it means, in two or three plain sentences (markdown)
TERMS: dict[str, str] = {
    "transfer learning": "Reusing what a network learnt on one large dataset (the *source*, e.g. ImageNet's photos) "
                         "for another task with little data (the *target*).",
    "pretrained": "A network whose weights were already trained on a source task; *from scratch* means the same "
                  "network starting from random weights.",
    "stage": "A group of consecutive layers of a network (a block). Early stages see edges and colours, late "
             "stages parts and objects; freezing and unfreezing go stage by stage.",
    "head": "The last layer, which turns the network's features into one score per class. A new task gets a new "
            "head with one output per class.",
    "feature extraction": "Every pretrained stage frozen (its weights kept as they are) and only a new head trained "
                          "on the features they compute.",
    "fine-tuning": "Training some or all of a pretrained network's stages further on the target data (*partial*: the "
                   "last stages; *full*: all of them).",
    "shots": "Training images (or sentences) per class: 3 shots = three examples of each class.",
    "seed": "The number that fixes a run's random choices (which images are drawn, the initial weights). Each seed "
            "is one repetition; several seeds show how much luck moves the result.",
    "validation accuracy": "The share of held-out examples (never trained on) that the model classifies correctly.",
    "paired": "Two conditions compared seed by seed on the same data: the difference is taken within each seed, "
              "then averaged, so the luck both share cancels out.",
    "claims rule": "How every verdict is decided: the condition against the strongest other one, paired over seeds. "
                   "It is a win (or a loss) only when the mean gap is at least one point and its 95% interval lies "
                   "above (or below) zero; anything else is a tie, said as a tie.",
    "95% interval": "The range in which the true mean gap lies with 95% confidence, from the spread of the paired "
                    "gaps over the seeds (Student's t). An interval that includes 0 cannot tell the two apart.",
    "10th–90th percentile": "A band that holds the middle 80% of the values: 10% of them lie below it and 10% above. "
                            "The line inside it is the median.",
    "negative transfer": "When a pretrained start does *worse* than training from scratch: the source task taught "
                         "something that misleads on the target.",
    "LoRA": "Low-Rank Adaptation: every weight matrix W stays frozen and a small update B·A of rank r is learnt "
            "beside it (W + B·A). Only A and B train: a fraction of a percent of the weights.",
    "BitFit": "Fine-tuning only the biases (the added constants) of the network, and the head; every weight matrix "
              "stays as pretrained.",
    "forgetting": "How much fine-tuning changed what the network did before: measured on data no method trained "
                  "on, against the original model.",
    "top-1 agreement": "The share of images on which the fine-tuned network's best guess (under the original head) "
                       "is the original model's best guess: 1 = it forgot nothing.",
    "CKA": "Centered Kernel Alignment: how alike two sets of features are (0 = unrelated, 1 = the same up to a "
           "rotation and scale). Used to compare a stage before and after fine-tuning.",
    "Grad-CAM": "A heat map of where in the image the network looked for its answer: the last stage's features "
                "weighted by how much the predicted class depends on them.",
    "linear probe": "A linear classifier trained on a stage's frozen features: how well it does says how much of "
                    "the answer that stage already holds.",
    "state_dict": "A network's weights as a dictionary from each parameter's name to its tensor: what is saved and "
                  "loaded. *Strict* loading asks that every name match.",
    "self-supervised pretraining": "Pretraining without labels: the network learns by predicting hidden parts of "
                                   "its input (here: masked features it must reconstruct).",
    "scouts": "In Guided Transfer Learning, copies of the base network each fine-tuned on a small sub-problem; how "
              "far they move each weight becomes the *guide* (0 = keep it frozen, 1 = let it move freely).",
    "tokens": "The word pieces a language model reads; [CLS] starts a sentence, [SEP] ends it.",
}


def entry(term: str) -> str:
    """One term's entry (KeyError names an unknown term: a page asked for a word the glossary lacks)."""
    return TERMS[term]


def help_for(*terms: str) -> str:
    """The entries of the terms a control or caption uses, as its `help=` text (markdown), with where the rest are."""
    return "\n\n".join(f"**{t}**: {entry(t)}" for t in terms) + "\n\nEvery term: the **Glossary** page."
