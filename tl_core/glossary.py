"""The words Transfer Lab uses that a newcomer may not know, once each: the Glossary page lists them, and a page
shows a term's entry as the `help=` of the control or caption where the term first appears (`help_for`).

A term is what the pages write (its key); `TERMS` keeps the glossary's order, from the idea to the methods."""
from __future__ import annotations

from tl_core.i18n import N_, tr

# term → what it means, in two or three plain sentences (markdown)
TERMS: dict[str, str] = {
    N_("transfer learning"):
        N_("Reusing what a network learnt on one large dataset (the *source*, e.g. ImageNet's photos) for "
           "another task with little data (the *target*)."),
    N_("pretrained"):
        N_("A network whose weights were already trained on a source task; *from scratch* means the same network"
           " starting from random weights."),
    N_("stage"):
        N_("A group of consecutive layers of a network (a block). Early stages see edges and colours, late "
           "stages parts and objects; freezing and unfreezing go stage by stage."),
    N_("head"):
        N_("The last layer, which turns the network's features into one score per class. A new task gets a new "
           "head with one output per class."),
    N_("feature extraction"):
        N_("Every pretrained stage frozen (its weights kept as they are) and only a new head trained on the "
           "features they compute."),
    N_("fine-tuning"):
        N_("Training some or all of a pretrained network's stages further on the target data (*partial*: the "
           "last stages; *full*: all of them)."),
    N_("shots"):
        N_("Training images (or sentences) per class: 3 shots = three examples of each class."),
    N_("seed"):
        N_("The number that fixes a run's random choices (which images are drawn, the initial weights). Each "
           "seed is one repetition; several seeds show how much luck moves the result."),
    N_("validation accuracy"):
        N_("The share of held-out examples (never trained on) that the model classifies correctly."),
    N_("paired"):
        N_("Two conditions compared seed by seed on the same data: the difference is taken within each seed, "
           "then averaged, so the luck both share cancels out."),
    N_("claims rule"):
        N_("How every verdict is decided: the condition against the strongest other one, paired over seeds. It "
           "is a win (or a loss) only when the mean gap is at least one point and its 95% interval lies above "
           "(or below) zero; anything else is a tie, said as a tie."),
    N_("95% interval"):
        N_("The range in which the true mean gap lies with 95% confidence, from the spread of the paired gaps "
           "over the seeds (Student's t). An interval that includes 0 cannot tell the two apart."),
    N_("10th–90th percentile"):
        N_("A band that holds the middle 80% of the values: 10% of them lie below it and 10% above. The line "
           "inside it is the median."),
    N_("negative transfer"):
        N_("When a pretrained start does *worse* than training from scratch: the source task taught something "
           "that misleads on the target."),
    N_("LoRA"):
        N_("Low-Rank Adaptation: every weight matrix W stays frozen and a small update B·A of rank r is learnt "
           "beside it (W + B·A). Only A and B train: a fraction of a percent of the weights."),
    N_("BitFit"):
        N_("Fine-tuning only the biases (the added constants) of the network, and the head; every weight matrix "
           "stays as pretrained."),
    N_("forgetting"):
        N_("How much fine-tuning changed what the network did before: measured on data no method trained on, "
           "against the original model."),
    N_("top-1 agreement"):
        N_("The share of images on which the fine-tuned network's best guess (under the original head) is the "
           "original model's best guess: 1 = it forgot nothing."),
    N_("CKA"):
        N_("Centered Kernel Alignment: how alike two sets of features are (0 = unrelated, 1 = the same up to a "
           "rotation and scale). Used to compare a stage before and after fine-tuning."),
    N_("Grad-CAM"):
        N_("A heat map of where in the image the network looked for its answer: the last stage's features "
           "weighted by how much the predicted class depends on them."),
    N_("linear probe"):
        N_("A linear classifier trained on a stage's frozen features: how well it does says how much of the "
           "answer that stage already holds."),
    N_("state_dict"):
        N_("A network's weights as a dictionary from each parameter's name to its tensor: what is saved and "
           "loaded. *Strict* loading asks that every name match."),
    N_("self-supervised pretraining"):
        N_("Pretraining without labels: the network learns by predicting hidden parts of its input (here: masked"
           " features it must reconstruct)."),
    N_("scouts"):
        N_("In Guided Transfer Learning, copies of the base network each fine-tuned on a small sub-problem; how "
           "far they move each weight becomes the *guide* (0 = keep it frozen, 1 = let it move freely)."),
    N_("tokens"):
        N_("The word pieces a language model reads; [CLS] starts a sentence, [SEP] ends it."),
}


def entry(term: str) -> str:
    """One term's entry (KeyError names an unknown term: a page asked for a word the glossary lacks)."""
    return TERMS[term]


def help_for(*terms: str) -> str:
    """The entries of the terms a control or caption uses, as its `help=` text (markdown), with where the rest are."""
    return ("\n\n".join(f"**{tr(t)}**: {tr(entry(t))}" for t in terms) + "\n\n"
            + tr("Every term: the **Glossary** page."))
