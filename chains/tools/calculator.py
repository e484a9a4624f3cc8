"""calculator: exact arithmetic on a parsed expression tree (no eval): + - * / // % ** and parentheses."""
from __future__ import annotations

import ast
import operator
from decimal import ROUND_FLOOR, Decimal, DivisionByZero, InvalidOperation, getcontext

from pydantic import BaseModel, Field

from chains.tools.spec import ToolContext, ToolFailed, ToolSpec


def _floor_div(a: Decimal, b: Decimal) -> Decimal:  # Decimal's // truncates toward zero; arithmetic floors
    return (a / b).to_integral_value(rounding=ROUND_FLOOR)


OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
             ast.FloorDiv: _floor_div, ast.Mod: lambda a, b: a - b * _floor_div(a, b), ast.Pow: operator.pow}
MAX_LENGTH, MAX_EXPONENT = 200, 1000


class CalculatorArgs(BaseModel):
    expression: str = Field(description="an arithmetic expression, e.g. (1250 * 1.2) / 3")


def evaluate(expression: str) -> Decimal:
    """The value of an arithmetic expression; ToolFailed says what is wrong with a bad one."""
    text = expression.strip().replace("×", "*").replace("÷", "/").replace("^", "**")
    if not text or len(text) > MAX_LENGTH:
        raise ToolFailed("bad_input", f"Give an arithmetic expression of at most {MAX_LENGTH} characters.")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise ToolFailed("bad_input", f"'{expression}' is not an arithmetic expression.") from None
    getcontext().prec = 28
    try:
        return _value(tree.body)
    except (DivisionByZero, ZeroDivisionError, InvalidOperation):
        raise ToolFailed("bad_input", "That divides by zero or is undefined.") from None


def _value(node: ast.AST) -> Decimal:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return Decimal(str(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        value = _value(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in OPERATORS:
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ToolFailed("bad_input", f"Exponents above {MAX_EXPONENT} are not calculated.")
        return OPERATORS[type(node.op)](left, right)
    raise ToolFailed("bad_input", "Only numbers, + - * / // % ** and parentheses are allowed.")


def run(context: ToolContext, args: CalculatorArgs) -> str:
    value = evaluate(args.expression)
    shown = format(value.normalize(), "f") if value == value.to_integral_value() else str(value.normalize())
    return f"{args.expression.strip()} = {shown}"


CALCULATOR = ToolSpec(name="calculator", description="Exact arithmetic. Use it for any calculation.",
                      args=CalculatorArgs, run=run)
