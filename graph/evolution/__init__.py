"""The evolution subgraph: a population of genomes {system prompt version, LoRA adapter or
none, sampling settings} crossed and mutated (LLM-driven for prompts, PEFT weighted merges
searched by CMA-ES for LoRA adapters), scored on held-out cases, kept in an archive with
lineage, and the winner promoted into the running agent on probation.
"""
