def test_tiny_model_loads_and_generates_with_mlx_lm(tiny_model_dir):
    from mlx_lm import generate, load

    model, tokenizer = load(str(tiny_model_dir))
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Write add(a, b)."}], add_generation_prompt=True, tokenize=False
    )
    assert prompt.endswith("<|im_start|>assistant\n")
    text = generate(model, tokenizer, prompt, max_tokens=16)
    assert isinstance(text, str)
    assert tokenizer.eos_token == "<|im_end|>"
