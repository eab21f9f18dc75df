"""Tasks, written here: what the user asks, with a quality check that the answer still answers.

A rule "followed" by echoing it, or by babbling, is a failure: a first experiment here saw a bias
raise rule-passing while answers broke. So each task has an expected keyword where there is one
(any of a few spellings), and every answer is checked for echoing the rule and for degenerate
repetition.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from .families import words


@dataclass(frozen=True)
class Task:
    id: str
    kind: str  # fact, explain, email, list, summary
    prompt: str
    expect: tuple[str, ...] = ()  # any of these (case-insensitive) must appear, if given


CAPITALS = [
    ("France", "Paris"),
    ("Italy", "Rome"),
    ("Spain", "Madrid"),
    ("Germany", "Berlin"),
    ("Japan", "Tokyo"),
    ("Egypt", "Cairo"),
    ("Canada", "Ottawa"),
    ("Kenya", "Nairobi"),
    ("Peru", "Lima"),
    ("Norway", "Oslo"),
    ("Greece", "Athens"),
    ("Portugal", "Lisbon"),
    ("Austria", "Vienna"),
    ("Russia", "Moscow"),
    ("China", "Beijing"),
    ("Thailand", "Bangkok"),
    ("Ireland", "Dublin"),
    ("Poland", "Warsaw"),
    ("Sweden", "Stockholm"),
    ("Argentina", "Buenos Aires"),
]
ARITHMETIC = [
    (2, 3),
    (7, 5),
    (12, 9),
    (20, 22),
    (15, 30),
    (8, 8),
    (41, 1),
    (6, 7),
    (100, 50),
    (9, 11),
]
NUMBER_WORDS = {
    5: "five",
    12: "twelve",
    21: "twenty-one",
    42: "forty-two",
    45: "forty-five",
    16: "sixteen",
    13: "thirteen",
    150: "hundred",
    20: "twenty",
}
FACTS = [
    ("How many days are in a week?", ("seven", "7")),
    ("How many legs does a spider have?", ("eight", "8")),
    ("What is the largest planet in the solar system?", ("Jupiter",)),
    ("What gas do plants take in from the air for photosynthesis?", ("carbon dioxide", "CO2")),
    ("What is the chemical symbol for gold?", ("Au",)),
    ("What is frozen water called?", ("ice",)),
    ("Which planet is known as the Red Planet?", ("Mars",)),
    ("How many continents are there?", ("seven", "7")),
    ("What is the boiling point of water in degrees Celsius at sea level?", ("100",)),
    ("Who wrote the play Romeo and Juliet?", ("Shakespeare",)),
    ("What is the largest ocean on Earth?", ("Pacific",)),
    ("What colour do you get by mixing blue and yellow?", ("green",)),
    ("How many hours are in a day?", ("24", "twenty-four")),
    ("What is the closest star to the Earth?", ("Sun",)),
    ("What do bees make?", ("honey",)),
    ("What is the opposite of hot?", ("cold",)),
    ("How many sides does a triangle have?", ("three", "3")),
    ("What is the main language spoken in Brazil?", ("Portuguese",)),
    ("Which animal is known as the king of the jungle?", ("lion",)),
    ("What is H2O commonly called?", ("water",)),
    ("How many minutes are in an hour?", ("60", "sixty")),
    ("What is the tallest animal in the world?", ("giraffe",)),
    ("Which metal is liquid at room temperature?", ("mercury",)),
    ("What do caterpillars turn into?", ("butterfl", "moth")),
    ("What is the freezing point of water in degrees Celsius?", ("0", "zero")),
    ("Which organ pumps blood through the body?", ("heart",)),
    ("What is the largest desert in Africa?", ("Sahara",)),
    ("How many strings does a standard guitar have?", ("six", "6")),
    ("What shape has four equal sides and four right angles?", ("square",)),
    ("Which month comes after June?", ("July",)),
]
EXPLAIN = [
    ("Explain why the sky looks blue.", ("scatter", "light")),
    ("Explain what a vaccine does.", ("immune",)),
    ("Explain how a rainbow forms.", ("light", "rain", "droplet")),
    ("Explain what photosynthesis is.", ("light", "sugar", "energy")),
    ("Explain why we have seasons on Earth.", ("tilt", "axis")),
    ("Explain what a computer password is for.", ("access", "secure", "protect")),
    ("Explain what gravity does.", ("pull", "attract", "fall")),
    ("Explain why ice floats on water.", ("dense", "density")),
    ("Explain what a budget is.", ("money", "spend", "income")),
    ("Explain how a bicycle moves forward.", ("pedal", "wheel", "chain")),
    ("Explain what recycling means.", ("reuse", "waste", "material")),
    ("Explain why exercise is healthy.", ("heart", "muscle", "health")),
    ("Explain what a map is used for.", ("location", "direction", "place", "find")),
    ("Explain what an email attachment is.", ("file",)),
    ("Explain why bread goes stale.", ("moisture", "dry", "water")),
]
EMAILS = [
    ("Write a short email to a colleague asking to move our meeting to Friday.", ("Friday",)),
    ("Write a short email thanking a friend for a birthday gift.", ("thank",)),
    ("Write a short email to a landlord reporting a broken heater.", ("heater",)),
    ("Write a short email inviting the team to lunch on Tuesday.", ("lunch",)),
    ("Write a short email apologising for missing a call.", ("sorry", "apolog")),
    ("Write a short email asking a shop whether an order has shipped.", ("order",)),
    ("Write a short email reminding a client that an invoice is due.", ("invoice",)),
    ("Write a short email welcoming a new member to a book club.", ("welcome",)),
    ("Write a short email asking a teacher for feedback on an essay.", ("essay", "feedback")),
    ("Write a short email cancelling a dentist appointment.", ("appointment", "cancel")),
]
LISTS = [
    ("List three fruits.", ("apple", "banana", "orange", "pear", "grape", "mango", "strawberr")),
    ("List three colours.", ("red", "blue", "green", "yellow", "black", "white")),
    ("List three animals that live in the sea.", ("fish", "whale", "shark", "dolphin", "octopus")),
    ("List three things you need to bake bread.", ("flour", "yeast", "water", "salt")),
    ("List three ways to save energy at home.", ("light", "off", "insulat", "heat")),
    ("List three musical instruments.", ("piano", "guitar", "violin", "drum", "flute")),
    ("List three planets.", ("Mars", "Venus", "Earth", "Jupiter", "Saturn", "Mercury")),
    (
        "List three sports played with a ball.",
        ("football", "soccer", "tennis", "basketball", "golf"),
    ),
    ("List three tips for better sleep.", ("bed", "screen", "caffeine", "dark", "routine")),
    ("List three parts of a tree.", ("root", "leaf", "leaves", "trunk", "branch", "bark")),
]
PARAGRAPHS = [
    (
        "The town library will close for two weeks in March while the roof is repaired. Members "
        "can return books at the community centre during that time, and loans will be extended.",
        ("library", "roof"),
    ),
    (
        "Bees visit flowers to collect nectar. As they move, pollen sticks to their bodies and is "
        "carried to other flowers, which helps the plants make seeds.",
        ("pollen", "bees"),
    ),
    (
        "The company reported higher sales this quarter, mostly from its new phone. Costs also "
        "rose, so profit stayed about the same as last year.",
        ("sales", "profit"),
    ),
    (
        "A heavy storm knocked out power across the valley on Sunday night. Crews worked through "
        "the night, and most homes had electricity again by Monday afternoon.",
        ("storm", "power"),
    ),
    (
        "Regular walking improves heart health and mood. Doctors suggest about thirty minutes a "
        "day, which can be split into shorter walks.",
        ("walk",),
    ),
    (
        "The museum opened a new exhibit on ancient Egypt. It includes tools, jewellery and a "
        "reconstructed tomb, and entry is free for children.",
        ("museum", "Egypt"),
    ),
    (
        "Farmers in the region planted earlier this year because of a warm spring. They expect a "
        "larger harvest if the summer is not too dry.",
        ("harvest", "farmer"),
    ),
    (
        "The city will add fifty kilometres of bike lanes over three years. Officials hope fewer "
        "cars will reduce traffic and air pollution.",
        ("bike", "lane"),
    ),
    (
        "Our team finished the project a week early. The client was pleased and asked us to start "
        "a second phase next month.",
        ("project", "client"),
    ),
    (
        "Octopuses have three hearts and blue blood. They can change colour to hide from predators "
        "and solve simple puzzles.",
        ("octopus",),
    ),
]


def _all() -> tuple[Task, ...]:
    tasks: list[Task] = []
    for country, capital in CAPITALS:
        tasks.append(
            Task(
                f"capital-{country.lower().replace(' ', '-')}",
                "fact",
                f"What is the capital of {country}?",
                (capital,),
            )
        )
    for a, b in ARITHMETIC:
        total = a + b
        expect = (str(total),) + ((NUMBER_WORDS[total],) if total in NUMBER_WORDS else ())
        tasks.append(Task(f"add-{a}-{b}", "fact", f"What is {a} plus {b}?", expect))
    for i, (question, expect) in enumerate(FACTS):
        tasks.append(Task(f"fact-{i:02d}", "fact", question, expect))
    for i, (prompt, expect) in enumerate(EXPLAIN):
        tasks.append(Task(f"explain-{i:02d}", "explain", prompt, expect))
    for i, (prompt, expect) in enumerate(EMAILS):
        tasks.append(Task(f"email-{i:02d}", "email", prompt, expect))
    for i, (prompt, expect) in enumerate(LISTS):
        tasks.append(Task(f"list-{i:02d}", "list", prompt, expect))
    for i, (paragraph, expect) in enumerate(PARAGRAPHS):
        tasks.append(
            Task(
                f"summary-{i:02d}",
                "summary",
                f"Summarise this paragraph in your own words:\n\n{paragraph}",
                expect,
            )
        )
    return tuple(tasks)


TASKS: tuple[Task, ...] = _all()
BY_ID: dict[str, Task] = {t.id: t for t in TASKS}
assert len(BY_ID) == len(TASKS) >= 100


@dataclass(frozen=True)
class Quality:
    ok: bool
    answered: bool  # the expected keyword is there (or none is expected)
    echoed: bool  # the answer repeats the rule instead of following it
    degenerate: bool  # empty, or looping repetition

    @property
    def reasons(self) -> list[str]:
        out = []
        if not self.answered:
            out.append("missing the expected answer")
        if self.echoed:
            out.append("echoes the rule")
        if self.degenerate:
            out.append("degenerate")
        return out


def quality(task: Task, response: str, rule: str = "") -> Quality:
    """Does ``response`` still answer ``task``, without echoing ``rule`` or looping?"""
    text = response.lower()
    answered = not task.expect or any(e.lower() in text for e in task.expect)
    echoed = _echoes(response, rule)
    degenerate = _degenerate(response)
    return Quality(answered and not echoed and not degenerate, answered, echoed, degenerate)


def _echoes(response: str, rule: str) -> bool:
    """The rule's own words make up much of the answer: 8 consecutive rule words, or more than
    half of the answer's word trigrams taken from the rule."""
    rule_words = [w.lower() for w in words(rule)]
    answer_words = [w.lower() for w in words(response)]
    if len(rule_words) < 3 or not answer_words:
        return False
    text = " " + " ".join(answer_words) + " "
    span = min(8, len(rule_words))
    for i in range(len(rule_words) - span + 1):
        if " " + " ".join(rule_words[i : i + span]) + " " in text:
            return True
    rule_grams = {tuple(rule_words[i : i + 3]) for i in range(len(rule_words) - 2)}
    grams = [tuple(answer_words[i : i + 3]) for i in range(len(answer_words) - 2)]
    return bool(grams) and sum(g in rule_grams for g in grams) / len(grams) > 0.5


def _degenerate(response: str) -> bool:
    tokens = [w.lower() for w in words(response)]
    if not tokens:
        return True
    lines = [line.strip() for line in response.splitlines() if line.strip()]
    if len(lines) >= 3 and Counter(lines).most_common(1)[0][1] >= 3:
        return True  # the same line again and again
    if len(tokens) < 12:
        return False
    grams = Counter(tuple(tokens[i : i + 4]) for i in range(len(tokens) - 3))
    return grams.most_common(1)[0][1] >= 3 or len(set(tokens)) / len(tokens) < 0.3
