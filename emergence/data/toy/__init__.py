"""A toy world in which capabilities really emerge at tiny scale, so the whole method runs on a CPU.

Why it exists: no ladder of real checkpoints can be trained or downloaded on a laptop, but the
emergence-law method needs checkpoints on both sides of an emergence point, and a ground truth to
check a forecast against. Here a seeded generator writes a pretraining corpus about a made-up world
(people with a favorite color, a pet, a home city and a number of coins), and three tasks in the
formats of the real benchmarks ask about it: letter multiple choice (``toy_mc``, like MMLU/CSQA),
yes/no acceptability scored by MCC (``toy_yesno``, like CoLA) and a numeric answer by generation
(``toy_math``, like GSM8K).

The design that produces emergence: **the corpus contains every ingredient of a task, never the
task itself.**

- *Knowledge* is stated in prose: "bazol keeps a dog. the favorite color of bazol is red. bazol has
  7 coins." (``bio`` documents), and arithmetic as sentences: "7 plus 5 is 12."
- *Formats* appear as quizzes: multiple-choice questions, "Does this sentence make sense?" items and
  worked coin problems in exactly the task layouts, but only about the *exam* relation (where people
  live) and the *exam* operation (losing coins).
- The *tasks* ask the other relations (color, pet) in those formats, and the other operation
  (finding coins: recall the count, then add). Test entities never occur in any quiz.

Answering few-shot therefore needs a composition: recall a fact learned from prose, then route it
through an answer format learned on a different relation (pick the letter whose option matches; say
yes when the statement agrees with memory; write "had N coins. N plus d is M. #### M"). A model must
first learn the facts (late: they are the last part of the corpus loss to fall) and then represent
them abstractly enough to be reused by a circuit trained on other relations; small or early
checkpoints do neither, so they sit at chance while their loss is still high, and accuracy rises only
at the lowest losses of the ladder. Finetuning on a task's ``train`` split (other entities, same
relation) teaches the mapping from the new relation to the format directly, so a weaker checkpoint
that knows the facts but cannot compose them in context succeeds after finetuning, and more data
teaches it to weaker ones still: emergence moves to higher loss as the budget grows, which is what
the emergence law (Snell et al., 2024) models.

Modules: :mod:`.world` (entities, splits, config), :mod:`.formats` (wording), :mod:`.corpus`
(documents), :mod:`.tasks` (task records and TaskSpecs), :mod:`.tokenizer` (byte-level BPE),
:mod:`.store` (files on disk), :mod:`.registry` (plugs the tasks into ``emergence.data.tasks``).
"""
