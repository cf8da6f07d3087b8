"""Running the language models: everything between the agent and the model that answers.

  llm            the backends (Ollama, the embedded model), the fallback between them, streaming a reply
  embedded       the bundled SmolLM2 GGUF as a LangChain chat model; llama_process runs it in its own process
  cpu            the processor under the embedded model (features, llama.cpp build); ollama_client: the Ollama API
  adapters       serving evolved LoRA adapters; serving: the sampling and adapter attached to the prompt in use
  vram           the GPU memory budget (the context size and KV cache that fit)
  thinking       the `<think>` parser, the think-or-not router, loop guards
  window         which messages the model sees; sentences: where an answer stops; prompts: fixed templates

Does not own: what the agent learns (graph/learning), long-term memory (graph/memory) or the
settings (graph/config.py).
"""
