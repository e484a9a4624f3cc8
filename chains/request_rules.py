"""The one place a request is made to fit its deployment's capabilities (config/capabilities.py): whatever a chain
binds (a fixed temperature, a summariser's temperature 0, a judge's settings), nothing the deployment refuses is sent.

- Sampling parameters (temperature, top_p, penalties, logprobs, logit_bias) are dropped where the model refuses them.
- The answer limit is always `max_completion_tokens` (reasoning models refuse `max_tokens`), at most the deployment's.
- `reasoning_effort` only where the deployment offers efforts: the chosen one when offered, else the deployment's
  default; never on a model without efforts.
- A deployment that cannot stream gets no `stream` / `stream_options`.
"""
from __future__ import annotations

from collections.abc import Mapping

from config.capabilities import SAMPLING_PARAMETERS
from config.catalog import Deployment

# What the audit record says was sent, per call (the parameters that differ between deployments and chains).
AUDITED_PARAMETERS = ("temperature", "top_p", "max_completion_tokens", "reasoning_effort")


def conform(params: Mapping, deployment: Deployment) -> dict:
    """`params` (a request payload or invocation parameters) with only what `deployment` accepts."""
    if "input" in params and "messages" not in params:
        return _conform_responses(params, deployment)
    conformed = dict(params)
    if not deployment.accepts_sampling:
        for name in SAMPLING_PARAMETERS:
            conformed.pop(name, None)
    if "max_tokens" in conformed:
        limit = conformed.pop("max_tokens")
        conformed.setdefault("max_completion_tokens", limit)
    limit = conformed.get("max_completion_tokens")
    if isinstance(limit, int) and limit > deployment.max_output_tokens:
        conformed["max_completion_tokens"] = deployment.max_output_tokens
    if deployment.reasoning_efforts:
        conformed["reasoning_effort"] = deployment.effort(conformed.get("reasoning_effort"))
    else:
        conformed.pop("reasoning_effort", None)
    if not deployment.streaming:
        conformed.pop("stream_options", None)
        if conformed.get("stream"):
            conformed["stream"] = False
    return conformed


def audited(params: Mapping) -> dict:
    """The parameters an audit record names, as sent (None where not sent)."""
    return {name: params.get(name) for name in AUDITED_PARAMETERS}


def lightest_effort(deployment: Deployment) -> str | None:
    """The cheapest effort a deployment offers (for summaries: folding messages needs no deep reasoning)."""
    for effort in ("none", "minimal", "low", "medium", "high"):
        if effort in deployment.reasoning_efforts:
            return effort
    return None


def _conform_responses(payload: Mapping, deployment: Deployment) -> dict:
    """A Responses API payload: the limit is `max_output_tokens`, the effort and summary live in `reasoning`."""
    conformed = dict(payload)
    if not deployment.accepts_sampling:
        for name in SAMPLING_PARAMETERS:
            conformed.pop(name, None)
    limit = conformed.get("max_output_tokens")
    if isinstance(limit, int) and limit > deployment.max_output_tokens:
        conformed["max_output_tokens"] = deployment.max_output_tokens
    reasoning = dict(conformed.pop("reasoning", None) or {})
    chosen = conformed.pop("reasoning_effort", None) or reasoning.get("effort")
    if deployment.reasoning_efforts:
        reasoning["effort"] = deployment.effort(chosen)
    else:
        reasoning.pop("effort", None)
    if not deployment.reasoning_summaries:
        reasoning.pop("summary", None)
    if reasoning:
        conformed["reasoning"] = reasoning
    if not deployment.streaming and conformed.get("stream"):
        conformed["stream"] = False
    return conformed
