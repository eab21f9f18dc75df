"""salience's model package: the local LLM and attention steering on marked spans.

    from salience.markup import parse_messages
    from salience.model.local import LocalModel

    lm = LocalModel.load()            # the embedded SmolLM2-135M-Instruct (device="auto")
    conv = parse_messages([{"role": "system", "content": "<rule>Answer in French.</rule>"},
                           {"role": "user", "content": "Where is Rome?"}])
    print(lm.generate(conv, "distance", max_new_tokens=24).text)

(The package imports nothing itself: `model.local` loads torch and transformers.)
"""
