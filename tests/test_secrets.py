import random
import string

import pytest

from rfai_cli.secrets import find_secrets, has_secret, redact, redact_value, scan_rows

rng = random.Random(7)


def token(n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    # Fake keys with the real formats' alphabets and lengths; never real credentials.
    while True:
        value = "".join(rng.choice(alphabet) for _ in range(n))
        if any(c.isupper() for c in value) and any(c.islower() or c.isdigit() for c in value):
            return value


HF = "hf_" + token(34, string.ascii_letters)
OPENAI_PROJECT = "sk-proj-" + token(74, string.ascii_letters + string.digits + "_-") + "T3BlbkFJ" + token(74)
OPENAI_LEGACY = "sk-" + token(48)
ANTHROPIC = "sk-ant-api03-" + token(93, string.ascii_letters + string.digits + "_-") + "AA"
AWS_ID = "AKIA" + token(16, string.ascii_uppercase + string.digits)
AWS_SECRET = token(40, string.ascii_letters + string.digits + "/+")
GITHUB = "ghp_" + token(36)
PRIVATE_KEY = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    + "\n".join(token(64, string.ascii_letters + string.digits + "+/") for _ in range(5))
    + "\n-----END RSA PRIVATE KEY-----"
)


@pytest.mark.parametrize(
    "secret, kind",
    [
        (HF, "huggingface"),
        (OPENAI_PROJECT, "openai"),
        (OPENAI_LEGACY, "openai"),
        (ANTHROPIC, "anthropic"),
        (AWS_ID, "aws_access_key_id"),
        (GITHUB, "github"),
        (PRIVATE_KEY, "private_key"),
        (PRIVATE_KEY.replace("RSA", "OPENSSH"), "private_key"),
    ],
)
def test_realistic_fake_keys_are_found_with_exact_spans(secret, kind):
    text = f'client = Client(api_key="{secret}")\n'
    matches = find_secrets(text)
    assert [m.kind for m in matches] == [kind]
    assert text[matches[0].start : matches[0].end] == secret
    assert redact(text) == f'client = Client(api_key="[REDACTED:{kind}]")\n'


def test_aws_secret_is_found_through_its_label_and_only_the_value_goes():
    text = f"aws_secret_access_key = {AWS_SECRET}\nregion = us-east-1"
    assert redact(text) == "aws_secret_access_key = [REDACTED:aws_secret_access_key]\nregion = us-east-1"


def test_aws_secret_label_in_other_spellings():
    for label in ("AWS_SECRET_ACCESS_KEY", "awsSecretAccessKey", "aws_secret_key"):
        assert [m.kind for m in find_secrets(f'{label}: "{AWS_SECRET}"')] == ["aws_secret_access_key"], label


def test_truncated_private_key_is_removed_to_the_end():
    text = "key = '''-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49"
    assert redact(text) == "key = '''[REDACTED:private_key]"


def test_several_kinds_in_one_text_keep_their_order():
    text = f"{AWS_ID} then {HF} then {ANTHROPIC}"
    assert [m.kind for m in find_secrets(text)] == ["aws_access_key_id", "huggingface", "anthropic"]
    assert redact(text) == "[REDACTED:aws_access_key_id] then [REDACTED:huggingface] then [REDACTED:anthropic]"


@pytest.mark.parametrize(
    "text",
    [
        "from sklearn import svm  # pip install scikit-learn (sk-learn)",
        "sk-learn-and-more-words-in-a-long-kebab-case-identifier",
        "sk-proj-",
        "hf_token = os.environ['HF_TOKEN']",
        "hf_hub_download(repo_id, filename)",
        "hf_" + "a" * 34,  # one letter case only: an identifier, not a token
        "my_hf_" + HF[3:],  # part of a longer identifier
        "AKIA",
        "AKIAshort",
        "public = '-----BEGIN PUBLIC KEY-----\\nMIIB...'",
        "sha = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'",
        "",
    ],
)
def test_things_that_are_not_secrets(text):
    assert find_secrets(text) == []
    assert redact(text) == text


def test_scan_rows_reports_row_index_and_nested_field_paths():
    rows = [
        {"prompt": "clean", "student_code": "print(1)"},
        {"prompt": "p", "score_sources": {"judge": f"used {HF}"}, "tests": ["ok", f"key={AWS_ID}"]},
    ]
    found = [(index, path, match.kind) for index, path, match in scan_rows(rows)]
    assert found == [(1, "score_sources.judge", "huggingface"), (1, "tests[1]", "aws_access_key_id")]
    assert not has_secret(rows[0]) and has_secret(rows[1])


def test_redact_value_keeps_structure_and_key_order():
    row = {"z": 1, "student_code": f"key = '{OPENAI_LEGACY}'", "a": {"b": [HF, 2.5]}}
    new, count = redact_value(row)
    assert count == 2
    assert list(new) == ["z", "student_code", "a"]
    assert new == {"z": 1, "student_code": "key = '[REDACTED:openai]'", "a": {"b": ["[REDACTED:huggingface]", 2.5]}}
    assert row["a"]["b"][0] == HF  # the input is not modified
