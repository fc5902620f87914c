"""Ready lessons for a class: a source, a target, a method and what to watch. The app's Train page
offers them as links that fill the page; ``python -m lepton lessons`` lists them.

Chosen from ``bench/lessons.py`` (digits -> each built-in shift x methods, 10 epochs, seeds 0-2,
label-free checkpoint; the table is in the README)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, List


@dataclass(frozen=True)
class Lesson:
    """One ready experiment.

    Attributes
    ----------
    key, title : str
    source, target, method : str
        Domain and method names.
    epochs : int
    watch : str
        What to look at while it trains, in plain words.
    question : str
        A question for the class to answer from what they saw.
    """

    key: str
    title: str
    source: str
    target: str
    method: str
    epochs: int
    watch: str
    question: str = ""

    def query(self) -> Dict[str, str]:
        """The Train page's URL query for this lesson (lesson mode on, naming the lesson)."""
        return {"source": self.source, "target": self.target, "method": self.method, "epochs": str(self.epochs),
                "lesson": self.key}


LESSONS: List[Lesson] = [
    Lesson("mild", "Adaptation wins: smaller digits", "digits", "digits-small", "dann", 10,
           "The target digits are shrunk to 70 %. Trained on the source alone, a model reads about a third of them "
           "(33-43 % here); DANN's gradient reversal pulls the two domains' features together and reaches 52-71 %. "
           "Watch the map: the orange target points move onto the blue source clusters.",
           "Run source-only on the same pair: how many points does DANN add, and where on the map do you see it?"),
    Lesson("rotation", "A turn of 30 degrees", "digits", "digits:rotate=30", "dann", 10,
           "A milder rotation: source-only reaches 43-52 %, DANN 58-61 %. At 45 degrees (digits-rotated) the gain "
           "mostly disappears: the shapes change too much for feature alignment to find which class is which.",
           "Try digits-rotated (45 degrees) next: why would aligning the features help less there?"),
    Lesson("hard", "Adaptation fails: inverted digits", "digits", "digits-inverted", "dann", 10,
           "White ink on black becomes black ink on white. Every method stays near 0 % (seed 0: source-only 0.0 %, "
           "DANN 3.3 %): the source features respond to ink, the target has ink everywhere but the stroke, and "
           "aligning the two domains' features cannot tell which target cluster is which class. Below the 10 % of "
           "guessing: the model is confidently wrong. The map shows the domains side by side, never mixed.",
           "If aligning the domains cannot fix this shift, what would? (Hint: what does the model see as ink?)"),
    Lesson("colour", "A colour shift: digits on coloured textures", "digits", "digits-colored", "dann", 10,
           "Gray digits against RGB digits drawn as |background - ink| on random coloured textures (like MNIST-M). "
           "Source-only reads 6-7 % and DANN 4-10 % (20 epochs, seeds 0-2): on 8x8 images the texture and the "
           "half-inverted ink leave too little shape for alignment to find. Compare mnist -> mnist-m with the "
           "benchmark files, where the digits are large enough.",
           "What would you need to know about the target images to choose a method that works here?"),
]


def find_lesson(key: str) -> "Lesson | None":
    """The lesson named ``key`` (``None`` for another value, e.g. ``"1"``: lesson mode without a lesson)."""
    return next((x for x in LESSONS if x.key == key), None)


def lessons() -> List[Dict[str, object]]:
    """The lessons as plain dicts (for JSON and tables)."""
    return [asdict(x) for x in LESSONS]
