"""The side-by-side leaderboard, for people with the experimenter role: computed from the votes in the database when
it is opened (a dialog), never on an ordinary rerun."""
from __future__ import annotations

from collections import defaultdict

import streamlit as st

from callbacks.chain_stats import ChainStatistics
from experiments.statistics import Vote, bradley_terry, records
from memory.store import ConversationStore


def leaderboard_button(store: ConversationStore, statistics: ChainStatistics, roles: list[str] | tuple[str, ...],
                       role: str) -> None:
    if role not in roles:
        return
    with st.sidebar:
        if st.button("Leaderboard", icon=":material/leaderboard:", key="open_leaderboard"):
            _leaderboard(store, statistics)


@st.dialog("Side-by-side leaderboard", width="large")
def _leaderboard(store: ConversationStore, statistics: ChainStatistics) -> None:
    comparisons = store.voted_comparisons()
    if not comparisons:
        st.caption("No votes yet: switch on *Side by side* in the sidebar and vote.")
        return
    votes = [Vote(c.contender("a"), c.contender("b"), c.vote) for c in comparisons]
    ratings = {r.name: r for r in bradley_terry(votes)}
    usage = {s.chain: s for s in statistics.all()}
    rows = []
    for record in records(votes):
        rating = ratings.get(record.name)
        chain = record.name.split(" · ")[0]
        stats = usage.get(chain)
        thumbs = stats.thumbs_up + stats.thumbs_down if stats else 0
        rows.append({
            "chain · deployment": record.name, "rating": round(rating.rating) if rating else None,
            "rating 95%": f"{rating.low:.0f}–{rating.high:.0f}" if rating else "", "votes": record.comparisons,
            "wins": record.wins, "losses": record.losses, "ties": record.ties - record.both_bad,
            "both bad": record.both_bad, "win rate": f"{record.win_rate:.0%}",
            "win rate 95%": f"{record.interval.low:.0%}–{record.interval.high:.0%}",
            "mean cost $": f"{stats.total_cost_usd / stats.calls:.6f}" if stats and stats.calls else "",
            "mean tokens": round(stats.mean_prompt_tokens + stats.mean_completion_tokens) if stats else None,
            "mean TTFT ms": round(stats.mean_ttft_ms) if stats and stats.mean_ttft_ms else None,
            "mean latency ms": round(stats.mean_latency_ms) if stats else None,
            "👍": f"{stats.thumbs_up}/{thumbs}" if thumbs else "–",
        })
    rows.sort(key=lambda r: -(r["rating"] or 0))
    st.dataframe(rows, hide_index=True)
    per_pair = defaultdict(int)
    for vote in votes:
        per_pair[tuple(sorted((vote.a, vote.b)))] += 1
    st.caption(f"{len(votes)} votes over {len(per_pair)} pairings. Rating: Bradley–Terry on an Elo-like scale (1000 is "
               "the average), ties and 'both bad' as half a win each; win rate with a 95% Wilson interval. Cost, "
               "tokens and times are per model call of that chain, from every recorded call.")
