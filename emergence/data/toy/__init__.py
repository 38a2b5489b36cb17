"""A toy world in which capabilities really emerge at tiny scale, so the whole method runs on a CPU.

Why it exists: no ladder of real checkpoints can be trained or downloaded on a laptop, but the
emergence-law method needs checkpoints on both sides of an emergence point, and a ground truth to
check a forecast against. Here a seeded generator writes a pretraining corpus about a made-up world
(people with a favorite color, a pet, a home city and a number of coins), and three tasks in the
formats of the real benchmarks ask about it: letter multiple choice (``toy_mc``, like MMLU/CSQA),
yes/no acceptability scored by MCC (``toy_yesno``, like CoLA) and a numeric answer by generation
(``toy_math``, like GSM8K). See docs/toy-world.md for measured accuracy against pretraining loss.

The design that produces emergence: **the corpus contains every ingredient of a task, but the
task's own combination only rarely, and never for the entities it is tested on.**

- *Knowledge* is stated in prose: "bazol keeps a dog. the favorite color of bazol is red. bazol has
  7 coins." (``bio`` documents, both phrasings of each relation), and arithmetic as sentences:
  "7 plus 5 is 12."
- *Formats* appear as quizzes in exactly the task layouts. Most quiz items ask about the *exam*
  relation (where people live) and the *exam* operation (losing coins); a share
  (``task_exam_share``) asks the task relations (color, pet) and operation (finding coins), and those
  items are never about a test entity.

Each task then needs a composition of skills that a model acquires one by one as its loss falls:

- ``toy_math``: copy the name, recall the person's coins (prose), copy the amount found, add
  (arithmetic sentences), and write "#### M": five steps, all needed for an exact match;
- ``toy_yesno`` (grammatical acceptability, like CoLA): "no" sentences are fact statements with
  two words swapped or a word dropped or doubled; the model must turn its own surprise at a
  sentence into the answer, learned mostly on sentences about cities;
- ``toy_mc``: recall the color or pet (prose) and answer with its letter; the options are the
  relation's four values in a fixed order, so the letter is a per-relation code that the quizzes
  teach well for cities and only rarely for colors and pets. In ``make demo``'s world
  (``mc_task: error``) it asks instead what is wrong with a statement (nothing, swapped words, a
  missing word, a doubled word): the grammar skill of ``toy_yesno`` with a rarely taught letter
  code, the same for every person, so finetuning teaches what the test questions need instead of
  per-person answers that erode the test people's facts (docs/toy-world.md, probes 10 and 13).

Small or briefly trained checkpoints lack at least one part, so their few-shot accuracy sits at chance
while their loss is high; the largest and longest-trained ones have all parts, and accuracy rises at
the lowest losses of the ladder. Finetuning on a task's ``train`` split (other entities, same
relation and format) supplies the rare combination directly, so a checkpoint that has the parts but
cannot combine them from a few shots succeeds after finetuning, and more data helps weaker ones:
emergence moves to higher loss as the budget grows, the effect the emergence law (Snell et al.,
2024) fits and extrapolates back to the few-shot regime.

Modules: :mod:`.world` (entities, splits, config), :mod:`.formats` (wording), :mod:`.corpus`
(documents), :mod:`.tasks` (task records), :mod:`.tokenizer` (byte-level BPE), :mod:`.store` (files
on disk, and the tasks' loader). The tasks themselves are declared in :mod:`emergence.data.tasks`.
"""
