"""What the agent learns from its user, and the guard on every change it makes to itself.

  reward     the engagement reward of a turn; rating: settling it, and explicit ratings
  strategy   the answering-strategy bandit (style, thinking, temperature per context bucket)
  feedback   explicit feedback acting at once: standing preferences; formats: the answer forms
             they name; topics: banned topics
  selfprompt the agent's own system prompt: versions, probation, rollback
  tuning     the tuning data (good and bad examples) for evolution's LoRA training
  guard      who may change the agent: the freeze switch, `may_change`, the learning log, and the
             learning directives read from the user's words (English and Japanese)

Does not own: when the graph calls these (graph/nodes), evolution (graph/evolution) or the
user's actions on them (graph/actions).
"""
