"""Every page of the app, once: `app.py`'s navigation, Home's page list, the lecture's links and the tests'
page tables all read PAGES, in the sidebar's order.

Adding a page is one line here (and the thin script in `app_pages/`)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Page:
    title: str
    icon: str            # a Material icon name
    path: str            # the URL path ("" for Home, the default page)
    script: str          # the page script under app_pages/
    description: str     # one line: what the page shows (Home lists it)
    prefix: str = ""     # its widgets' keys and URL parameters start with this
    experiment: str = "" # the experiment it runs (its CLI command and history kind), if any

    @property
    def file(self) -> str:
        return f"app_pages/{self.script}.py"

    @property
    def url(self) -> str:
        return f"/{self.path}"


PAGES: tuple[Page, ...] = (
    Page("Home", "home", "", "home", "what transfer learning is, the training device, a 30-second tour"),
    Page("Lecture", "co_present", "lecture", "lecture",
         "the whole story as one guided tour, a live experiment per step", "lec_", "lecture"),
    Page("Regularisation toy", "show_chart", "toy", "toy",
         "task A → task B with two points: a pretrained start as a prior over functions", "toy_", "toy"),
    Page("Fine-tuning lab", "tune", "finetune", "finetune",
         "real pretrained backbones, freeze depth, strategy, few shots; shots sweep", "ft_", "finetune"),
    Page("What layers learn", "layers", "layers", "layers",
         "first-layer filters, activation maps, strongest patches, how far each stage moves", "lay_", "layers"),
    Page("Which strategy?", "grid_view", "domains", "domains",
         "the decks' 2×2 chart (few/more data × near/far) measured over seeds", "dom_", "domains"),
    Page("Your own images", "photo_camera", "own", "own",
         "a zip of class folders or webcam shots → fine-tune, predict, export", "own_", "finetune"),
    Page("Self-supervised pretraining", "visibility_off", "ssl", "selfsup",
         "hide inputs, reconstruct them, reuse the encoder on a few labels", "ssl_", "ssl"),
    Page("State-dict workshop", "database", "state", "state",
         "inspect, save and load weights; see why architectures must match", "sd_", "inspect"),
    Page("Guided Transfer Learning", "explore", "gtl", "gtl",
         "scouts say how far each weight should move; does guidance beat freezing the body?", "gtl_", "gtl"),
    Page("Transfer for text", "translate", "text", "text",
         "a pretrained sentence encoder on a few labelled sentences per topic", "text_", "text"),
    Page("Runs", "history", "runs", "runs", "every experiment kept, compared side by side, exported", "runs_"),
)


def page(path: str) -> Page:
    """The page at a URL path ('finetune', '/finetune?x=1' or '' for Home)."""
    path = path.lstrip("/").split("?")[0]
    return next(p for p in PAGES if p.path == path)
