"""The chat turn engine: runs one chat turn with no page and yields what happens as events.

    for event in engine.run(who, conversation, message, choices): ...

The Streamlit page renders these events; the offline experiment runner and the tests consume the same ones. Closing
the iterator is Stop. Nothing in this package imports streamlit.
"""
from engine.comparison import Compared, SideBySide, Sided  # noqa: E402 - builds on the turn engine
from engine.events import (
                           Accepted,
                           Blocked,
                           BudgetNotice,
                           DocumentIndexed,
                           DocumentProgress,
                           Event,
                           Outcome,
                           Status,
                           StepEnded,
                           StepStarted,
                           TextDelta,
                           ThinkingDelta,
                           UsageUpdate,
)
from engine.redo import Redo  # noqa: E402 - builds on the turn engine
from engine.turn import Asker, Choices, NewMessage, TurnEngine, Upload

__all__ = ["Accepted", "Asker", "Blocked", "BudgetNotice", "Choices", "Compared", "Sided", "SideBySide", "DocumentIndexed", "DocumentProgress", "Event", "NewMessage", "Outcome", "Redo", "Status", "StepEnded",
           "StepStarted", "TextDelta", "ThinkingDelta", "TurnEngine", "Upload", "UsageUpdate"]
