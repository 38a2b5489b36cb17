"""A toy world in which capabilities really emerge at tiny scale, so the whole method runs on a CPU.

No ladder of real checkpoints can be trained on a laptop, but the emergence-law method needs
checkpoints on both sides of an emergence point, and a ground truth to check a forecast against.
Here a seeded generator writes a pretraining corpus about made-up people (a favorite color, a pet,
a home city, some coins), and three tasks in the real benchmarks' formats ask about them: letter
multiple choice (``toy_mc``, like MMLU), yes/no acceptability (``toy_yesno``, like CoLA) and a
numeric answer by generation (``toy_math``, like GSM8K).

What produces emergence: **the corpus contains every ingredient of a task, but the task's own
combination only rarely, and never for the people it is tested on.** Small checkpoints lack some
part and sit at chance; the largest have every part, so accuracy rises at the ladder's lowest
losses. Finetuning on a task's ``train`` split supplies the combination directly, so emergence moves
to higher loss as the budget grows: the effect the emergence law (Snell et al., 2024) fits.
docs/toy-world.md gives the design and the measurements; the tasks are declared with the real
ones in :mod:`emergence.data.tasks`.
"""
