"""Embeddings in the Azure OpenAI emulator over real HTTPS with Entra tokens: the openai SDK's base64 default and the
float format, `dimensions`, Azure's limits and errors, faults aimed at embeddings, the request record, the local
model's vectors; and the scripted chat answer from document sources, with its citation."""
from __future__ import annotations

import array
import base64
import logging
import math
import time

import httpx
import openai
import pytest

from config.catalog import Catalog, EmbeddingDeployment
from localdev.embeddings import hashed_vector
from localdev.llama_engine import local_engine_available
from localdev.prompt_tokens import encoding_for_model
from tests.integration.conftest_aoai import API_KEY, API_VERSION, TENANT_ID, USER_OID, aoai, aoai_stack, raw_post  # noqa: F401 - pytest fixtures, used by name

MODEL = "text-embedding-3-small"
TEXTS = ["Quarterly revenue grew by 12 percent in the northern region.",
         "Revenue in the northern region grew this quarter.",
         "Teachers marked fewer essays during the pilot."]
INVALID_INPUT = "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference."


def post(aoai, body: dict, *, deployment: str = MODEL, route: str = "embeddings", **options) -> httpx.Response:
    return raw_post(aoai, body, route=route, deployment=deployment, **options)


def tokens(text: str) -> int:
    return len(encoding_for_model(MODEL).encode(text, disallowed_special=()))


def float32(vector: list[float]) -> list[float]:
    return array.array("f", vector).tolist()


def cosine(a, b) -> float:
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def embeddings_records(aoai) -> list[dict]:
    return [r for r in aoai.emulator.requests if r["kind"] == "embeddings"]


# ---- answers in Azure's shapes ----
def test_the_openai_sdk_gets_vectors_in_its_base64_default_with_tiktokens_usage(aoai):
    answer = aoai.sdk().embeddings.create(model=MODEL, input=TEXTS)
    assert [d.index for d in answer.data] == [0, 1, 2] and answer.object == "list" and answer.model == MODEL
    assert all(d.object == "embedding" and len(d.embedding) == 1536 for d in answer.data), "the model's native length"
    assert answer.data[0].embedding == float32(hashed_vector(TEXTS[0], 1536))
    assert answer.usage.prompt_tokens == answer.usage.total_tokens == sum(tokens(t) for t in TEXTS)
    first, similar, unrelated = (d.embedding for d in answer.data)
    assert cosine(first, similar) > 0.5 > abs(cosine(first, unrelated))
    [recorded] = embeddings_records(aoai)
    assert recorded["encoding_format"] == "base64", "the SDK asks for base64 unless told otherwise"
    assert (recorded["deployment"], recorded["inputs"], recorded["prompt_tokens"], recorded["dimensions"]) == \
        (MODEL, 3, answer.usage.prompt_tokens, 1536)
    assert recorded["token_claims"]["oid"] == USER_OID and recorded["fault"] is None


def test_float_format_and_headers_over_raw_https(aoai):
    response = post(aoai, {"input": TEXTS[0], "encoding_format": "float"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"object", "data", "model", "usage"}
    assert body["data"][0]["embedding"] == float32(hashed_vector(TEXTS[0], 1536))
    assert body["usage"] == {"prompt_tokens": tokens(TEXTS[0]), "total_tokens": tokens(TEXTS[0])}
    assert response.headers["x-ms-deployment-name"] == MODEL and response.headers["x-ms-region"]
    assert response.headers["apim-request-id"] == response.headers["x-request-id"]
    assert int(response.headers["x-ratelimit-remaining-tokens"]) > 0
    raw = post(aoai, {"input": TEXTS[0], "encoding_format": "base64"}).json()["data"][0]["embedding"]
    decoded = array.array("f")
    decoded.frombytes(base64.b64decode(raw))
    assert decoded.tolist() == body["data"][0]["embedding"], "base64 is the same float32 numbers, little-endian"
    assert post(aoai, {"input": TEXTS[0]}).json()["data"][0]["embedding"] == body["data"][0]["embedding"], \
        "float is the default on the wire"


def test_dimensions_shorten_the_vectors(aoai):
    answer = aoai.sdk().embeddings.create(model=MODEL, input=TEXTS[:2], dimensions=512)
    assert [len(d.embedding) for d in answer.data] == [512, 512]
    assert math.isclose(sum(v * v for v in answer.data[0].embedding), 1.0, rel_tol=1e-5)
    assert embeddings_records(aoai)[-1]["dimensions"] == 512
    assert len(post(aoai, {"input": "x", "dimensions": 1536}).json()["data"][0]["embedding"]) == 1536
    for dimensions, message in ((0, "Expected a value >= 1, but got 0 instead."),
                                (1537, "Expected a value <= 1536, but got 1537 instead.")):
        response = post(aoai, {"input": "x", "dimensions": dimensions})
        assert response.status_code == 400 and message in response.json()["error"]["message"]
    assert post(aoai, {"input": "x", "dimensions": "512"}).json()["error"]["code"] == "invalid_type"


def test_a_model_with_a_fixed_length_refuses_dimensions(aoai, monkeypatch):
    ada = EmbeddingDeployment(name="ada", model="text-embedding-ada-002", dimensions=1536, input_price_per_1m="0.10")
    catalog = aoai.emulator.catalog
    monkeypatch.setattr(aoai.emulator, "catalog", Catalog(deployments=catalog.deployments, default=catalog.default,
                                                           embeddings=(*catalog.embeddings, ada)))
    refused = post(aoai, {"input": "x", "dimensions": 512}, deployment="ada")
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == "This model does not support specifying dimensions."
    assert len(post(aoai, {"input": "x"}, deployment="ada").json()["data"][0]["embedding"]) == 1536


def test_token_ids_and_lists_of_token_ids_are_accepted(aoai):
    encoding = encoding_for_model(MODEL)
    ids = [encoding.encode(text) for text in TEXTS[:2]]
    one = post(aoai, {"input": ids[0], "encoding_format": "float"}).json()
    assert one["usage"]["prompt_tokens"] == len(ids[0]) and len(one["data"]) == 1
    assert one["data"][0]["embedding"] == float32(hashed_vector(TEXTS[0], 1536)), "ids are embedded as their text"
    answer = aoai.sdk().embeddings.create(model=MODEL, input=ids)
    assert len(answer.data) == 2 and answer.usage.prompt_tokens == len(ids[0]) + len(ids[1])


# ---- Azure's limits and errors ----
@pytest.mark.parametrize("value", ["", [], [""], ["fine", ""], [[]], [1, "a"], 5, {"text": "x"}, [-1], [10 ** 9]])
def test_empty_or_malformed_input_is_azures_400(aoai, value):
    response = post(aoai, {"input": value})
    assert response.status_code == 400
    assert response.json() == {"error": {"message": INVALID_INPUT, "type": "invalid_request_error", "param": None,
                                         "code": None}}


def test_missing_input_and_bad_options_are_400(aoai):
    assert post(aoai, {}).json()["error"]["message"] == "'input' is a required property"
    assert post(aoai, {"input": "x", "encoding_format": "int8"}).json()["error"]["code"] == "invalid_value"
    assert post(aoai, {"input": "x", "user": 7}).json()["error"]["code"] == "invalid_type"


def test_too_many_inputs_is_azures_400(aoai):
    with pytest.raises(openai.BadRequestError) as caught:
        aoai.sdk().embeddings.create(model=MODEL, input=["word"] * 2049)
    assert caught.value.status_code == 400
    assert "Too many inputs. The max number of inputs is 2048." in caught.value.body["message"]
    assert len(aoai.sdk().embeddings.create(model=MODEL, input=["word"] * 2048).data) == 2048


def test_an_input_over_the_token_limit_is_context_length_exceeded(aoai):
    text = "hello " * 8200
    count = tokens(text)
    assert count > 8191
    with pytest.raises(openai.BadRequestError) as caught:
        aoai.sdk().embeddings.create(model=MODEL, input=["short", text])
    assert caught.value.code == "context_length_exceeded"
    assert caught.value.body["message"] == (
        f"This model's maximum context length is 8192 tokens, however you requested {count} tokens ({count} in your "
        "prompt; 0 for the completion). Please reduce your prompt; or completion length.")
    fits = "hello " * 8000
    assert aoai.sdk().embeddings.create(model=MODEL, input=fits).usage.prompt_tokens == tokens(fits) <= 8191


def test_unknown_deployment_is_404_and_the_wrong_kind_of_deployment_400(aoai):
    with pytest.raises(openai.NotFoundError) as caught:
        aoai.sdk().embeddings.create(model="not-deployed", input="x")
    assert caught.value.code == "DeploymentNotFound"
    with pytest.raises(openai.BadRequestError) as caught:
        aoai.sdk().embeddings.create(model="gpt-4o", input="x")
    assert caught.value.code == "OperationNotSupported"
    assert caught.value.body["message"].startswith("The embeddings operation does not work with the specified model, gpt-4o.")
    with pytest.raises(openai.BadRequestError) as caught:
        aoai.sdk().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.code == "OperationNotSupported"
    assert f"The chatCompletion operation does not work with the specified model, {MODEL}." in caught.value.message


def test_authentication_and_api_version_as_for_chat(aoai):
    missing = post(aoai, {"input": "x"}, token=None)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "401"
    assert post(aoai, {"input": "x"}, token=aoai.signer.token(aud="api://someone-else")).status_code == 401
    with pytest.raises(openai.AuthenticationError):
        aoai.sdk(token=aoai.signer.token(exp=int(time.time()) - 3600)).embeddings.create(model=MODEL, input="x")
    assert post(aoai, {"input": "x"}, token=None, headers={"api-key": API_KEY}).status_code == 200
    assert post(aoai, {"input": "x"}, query="").status_code == 404
    assert embeddings_records(aoai)[-1]["headers"].get("api-key") is None


def test_user_and_user_security_context_are_recorded(aoai):
    context = {"application_name": "chat-tests", "end_user_id": USER_OID, "end_user_tenant_id": TENANT_ID,
               "source_ip": "203.0.113.7"}
    aoai.sdk().embeddings.create(model=MODEL, input=TEXTS, dimensions=512, user="someone",
                                 extra_body={"user_security_context": context})
    [recorded] = embeddings_records(aoai)
    assert recorded["user_security_context"] == context and recorded["user"] == "someone"
    assert (recorded["kind"], recorded["inputs"], recorded["dimensions"]) == ("embeddings", 3, 512)
    assert recorded["prompt_tokens"] == sum(tokens(t) for t in TEXTS)
    with httpx.Client(base_url=aoai.url, verify=aoai.ssl_context(), timeout=10) as http:
        listed = http.get("/_emulator/requests").json()["requests"]
    assert listed[-1]["user_security_context"] == context and listed[-1]["kind"] == "embeddings"


# ---- faults ----
def test_a_429_aimed_at_embeddings_is_retried_by_the_sdk(aoai):
    aoai.emulator.inject("429", retry_after=1, endpoint="embeddings")
    chat = aoai.sdk().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert chat.choices[0].message.content, "a fault aimed at embeddings leaves chat alone"
    started = time.monotonic()
    answer = aoai.sdk().with_options(max_retries=2, timeout=10).embeddings.create(model=MODEL, input=TEXTS)
    assert 0.9 <= time.monotonic() - started < 8, "the SDK waited retry-after before retrying"
    assert len(answer.data) == 3
    assert [r["fault"] for r in embeddings_records(aoai)] == ["429", None]


def test_the_429_has_azures_retry_after_and_message(aoai):
    aoai.emulator.inject("429", retry_after=2, endpoint="embeddings")
    response = post(aoai, {"input": "x"})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2" and response.headers["retry-after-ms"] == "2000"
    assert response.json()["error"]["message"].startswith(
        f"Requests to the Embeddings_Create Operation under Azure OpenAI API version {API_VERSION} have exceeded")
    assert post(aoai, {"input": "x"}).status_code == 200


def test_faults_for_any_request_hit_embeddings_and_chat_only_faults_do_not(aoai):
    with httpx.Client(base_url=aoai.url, verify=aoai.ssl_context(), timeout=10) as http:
        state = http.post("/_emulator/faults", json={"fault": "500", "endpoint": "chat"}).json()
        assert state["queued"][0]["endpoint"] == "chat"
        assert post(aoai, {"input": "x"}).status_code == 200
        http.post("/_emulator/faults", json={"fault": "500"})  # endpoint "any": the next request of either kind
        http.post("/_emulator/faults", json={"fault": "completion_filter"})  # never applies to embeddings
        assert post(aoai, {"input": "x"}).status_code == 500, "the chat-only fault stays queued, the 'any' one hits"
        assert [f["kind"] for f in http.get("/_emulator/faults").json()["queued"]] == ["500", "completion_filter"]
        assert post(aoai, {"input": "x"}).status_code == 200
        assert http.post("/_emulator/faults", json={"fault": "prompt_filter", "endpoint": "embeddings"}).status_code == 400
        assert http.post("/_emulator/faults", json={"fault": "500", "endpoint": "images"}).status_code == 400
    with pytest.raises(openai.InternalServerError):
        aoai.sdk().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])


def test_timeout_cut_and_context_length_faults_on_embeddings(aoai):
    aoai.emulator.inject("timeout", seconds=1.5, endpoint="embeddings")
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        aoai.sdk(timeout=0.3).embeddings.create(model=MODEL, input="x")
    assert time.monotonic() - started < 1.5
    aoai.emulator.inject("cut", endpoint="embeddings")
    with pytest.raises(openai.APIConnectionError):
        aoai.sdk().embeddings.create(model=MODEL, input="x")
    aoai.emulator.inject("context_length", endpoint="embeddings")
    with pytest.raises(openai.BadRequestError) as caught:
        aoai.sdk().embeddings.create(model=MODEL, input="x")
    assert caught.value.code == "context_length_exceeded"


def test_a_random_fault_rate_applies_to_embeddings(aoai):
    aoai.emulator.set_fault_rate(1.0, faults=["500"], seed=1, endpoint="embeddings")
    assert post(aoai, {"input": "x"}).status_code == 500
    assert aoai.sdk().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}]).choices


# ---- the scripted chat answer from document sources ----
SOURCES = ("Answer from the numbered sources below, which come from documents the person attached. Cite each source "
           "you use as [n] right after the statement it supports, using only these numbers.\n\n"
           '<source n="1" file="report.pdf" where="page 3">\nQuarterly revenue grew by 12 percent. Costs stayed flat.\n'
           '</source>\n<source n="2" file="notes.docx" where="section &#x201c;Results&#x201d;">\nThe pilot reached 40 '
           "schools. Teachers reported less marking.\n</source>")


def test_a_scripted_chat_with_sources_answers_with_a_citation(aoai):
    messages = [{"role": "system", "content": "You help staff."}, {"role": "system", "content": SOURCES},
                {"role": "user", "content": "How many schools did the pilot reach?"}]
    answer = aoai.sdk().chat.completions.create(model="gpt-4o", messages=messages)
    assert answer.choices[0].message.content == "According to the documents, The pilot reached 40 schools. [2]"
    streamed = aoai.sdk().chat.completions.create(model="gpt-4o", messages=messages[:2] + [
        {"role": "user", "content": "What is the weather in Paris?"}], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == "The attached documents do not say."
    assert [r["kind"] for r in aoai.emulator.requests] == ["chat", "chat"]


# ---- the local model's vectors ----
local_only = pytest.mark.skipif(local_engine_available() is not None,
                                reason=f"the local model is not installed here: {local_engine_available()}")


@pytest.fixture(scope="module")
def llama_engine():
    from localdev.llama_engine import LlamaEngine
    return LlamaEngine(max_waiting=0)


@local_only
@pytest.mark.slow
def test_the_local_model_embeds_with_llama_cpp_fitted_to_the_length(aoai, llama_engine):
    aoai.emulator.engine = llama_engine
    answer = aoai.sdk(timeout=180).embeddings.create(model=MODEL, input=TEXTS, dimensions=512)
    vectors = [d.embedding for d in answer.data]
    if llama_engine.embedding_failure and "cannot embed on this machine" in llama_engine.embedding_failure:
        # This llama.cpp build crashes in embedding mode here (seen: SIGSEGV on an AVX-512 machine): the emulator
        # stayed up and answered with the hashing vectors, which is what this guard is for.
        assert vectors[0] == float32(hashed_vector(TEXTS[0], 512))
        pytest.skip(llama_engine.embedding_failure)
    assert llama_engine.embedding_failure is None and [len(v) for v in vectors] == [512] * 3
    assert vectors[0] != float32(hashed_vector(TEXTS[0], 512)), "the model's vectors, not the hashing ones"
    assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-4) for v in vectors)
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2])
    native = aoai.sdk(timeout=60).embeddings.create(model=MODEL, input=TEXTS[0]).data[0].embedding
    width = llama_engine._embedder.n_embd()
    assert len(native) == 1536 and native[width:] == [0.0] * (1536 - width), "padded with zeros"


@local_only
@pytest.mark.slow
def test_the_local_engine_falls_back_to_hashing_vectors_and_says_so_once(aoai, caplog):
    from localdev.llama_engine import LlamaEngine

    engine = LlamaEngine(max_waiting=0)

    def broken():
        raise RuntimeError("no embedding support")

    engine._load_embedder = broken
    aoai.emulator.engine = engine
    with caplog.at_level(logging.WARNING, logger="localdev.llama_engine"):
        for _ in range(2):
            answer = aoai.sdk(timeout=60).embeddings.create(model=MODEL, input=TEXTS[0], dimensions=256)
            assert answer.data[0].embedding == float32(hashed_vector(TEXTS[0], 256))
    assert [r.getMessage() for r in caplog.records if "cannot embed" in r.getMessage()] == [
        "the local model cannot embed (RuntimeError: no embedding support); embeddings come from word hashing from now on"]
