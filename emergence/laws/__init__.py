"""Laws: the emergence law (finetuning method), loss↔compute scaling, observational scaling laws."""
