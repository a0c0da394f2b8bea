"""The text patterns of the pruning units and protect presets: numbers and compound values (mixed
numbers, fractions, times, powers, scientific notation, unicode fractions and superscripts, glued,
spaced and CJK units), word/word units (`km/h`), code fences and spans, LaTeX, operators, think tags.

`pruning_units` builds units and presets from them; see its module doc for what each preset keeps.
"""
from __future__ import annotations

import re

import regex

THINK_TAG = re.compile(r"</?think>")
GRAPHEME = regex.compile(r"\X")  # an extended grapheme cluster: a letter with its combining marks, an emoji sequence
CURRENCY = "$€£¥￥₹₩₽"  # currency signs a number may start with (￥: the full-width yen of CJK text)
PERCENT = "%％"  # percent signs a number may end with (％: full-width)
# a comma joins digits only as a thousands separator (exactly 3 digits follow): "1,234" is one number,
# "1,2,3" a list of three
NUMBER = re.compile(rf"(?:(?<![\w)\]])[-+−])?[{CURRENCY}]?\d+(?:,\d{{3}}(?!\d))*(?:\.\d+)?[{PERCENT}]?")

SUPERSCRIPTS = "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻"  # exponents written as superscripts ("10²", "m²", "10⁻³")
VULGAR_FRACTIONS = "¼½¾⅐⅑⅒⅓⅔⅕⅖⅗⅘⅙⅚⅛⅜⅝⅞"
_SP = "[ \u00a0\u202f]"  # one space inside a value (also no-break and narrow no-break), never a newline
# unit symbols a value keeps after a space ("5 km/h", "1 ½ m", "10² m²"): symbols only, no English words
# ("in", "a", "am" are left out: "5 in the box"); a glued unit ("40km") is any run of letters
UNIT_SYMBOLS = sorted({
    "km", "m", "cm", "mm", "µm", "μm", "nm", "mi", "ft", "yd", "kg", "g", "mg", "µg", "μg", "lb", "lbs", "oz",
    "L", "l", "mL", "ml", "cl", "dl", "s", "ms", "µs", "μs", "ns", "min", "mins", "h", "hr", "hrs", "kph", "mph",
    "Hz", "kHz", "MHz", "GHz", "W", "kW", "MW", "Wh", "kWh", "V", "mV", "kV", "mA", "J", "kJ", "cal", "kcal",
    "N", "Pa", "kPa", "MPa", "hPa", "atm", "mol", "mmol", "°", "°C", "°F", "℃", "℉", "kB", "KB", "MB", "GB",
    "TB", "px", "ha", "rad", "rpm"}, key=lambda u: (-len(u), u))
# CJK unit and measure words a value keeps ("40公里" is one value, never "40公")
CJK_UNITS = sorted({
    "公里", "千米", "厘米", "毫米", "米", "千克", "公斤", "克", "斤", "吨", "毫升", "升", "小时", "分钟", "秒", "天",
    "周", "个月", "月", "年", "岁", "元", "块", "角", "分", "美元", "欧元", "个", "只", "支", "本", "张", "条", "件",
    "辆", "次", "人", "度", "倍", "页", "位", "名", "台", "瓶", "杯", "碗", "盒", "箱", "袋", "份", "根", "颗", "棵",
    "朵", "双", "对", "套", "平方米", "立方米", "公顷", "亩", "里", "步", "圈", "道", "题", "层", "号", "日", "时",
    "キロ", "メートル", "センチ", "グラム", "リットル", "円", "ドル", "個", "枚", "歳", "時間", "分間", "秒間", "回",
    "匹", "冊", "台", "杯", "階", "번", "개", "원", "명", "살", "시간", "분", "초"}, key=lambda u: (-len(u), u))
_UNIT = "(?:" + "|".join(map(re.escape, UNIT_SYMBOLS)) + ")"
_CJK_UNIT = "(?:" + "|".join(map(re.escape, CJK_UNITS)) + ")"
_UNIT_POWER = rf"(?:[{SUPERSCRIPTS}]+|\^\d+)?"
_POWER = (rf"(?:(?:\^|\*\*)(?:\{{[-+−]?\d+(?:\.\d+)?\}}|\([-+−]?\d+(?:\.\d+)?\)|[-+−]?\d+(?:\.\d+)?)"
          rf"|[{SUPERSCRIPTS}]+)")
_VALUE_UNIT = (
    rf"(?:{_SP}?(?:[ap]\.m\.|[AP]\.M\.|[ap]m|[AP]M)(?!\w)"  # a time's am / pm ("3:45 pm")
    rf"|[A-Za-zµμΩ°℃℉]+[{SUPERSCRIPTS}]*(?:/[A-Za-zµμΩ°]+[{SUPERSCRIPTS}]*)?"  # a glued unit ("40km", "5m/s²")
    rf"|{_SP}{_UNIT}{_UNIT_POWER}(?:/{_UNIT}{_UNIT_POWER})?(?![A-Za-z\d])"  # a unit symbol after a space
    rf"|{_SP}?{_CJK_UNIT}(?:[/／]{_CJK_UNIT})?)")  # a CJK unit word ("40公里", "3 个", "40公里/小时")
# A compound value (the "numbers" preset): a number (`NUMBER`'s sign, currency, thousands and decimals,
# and further dotted parts: a date "15.03.2024", a version "1.2.3", "1.234.567") with its fraction / ratio /
# time / date parts ("1/2", "2:30", "2024/03/15") or the fraction of a mixed number ("3 1/2", "1 ½"),
# exponent ("1.5e-3"), power ("10^3", "10²"), "× 10^n", percent sign and unit; or a unicode fraction on
# its own ("½"). A mixed number's fraction after a fraction is another value ("1/2 3/4" is two).
VALUE = re.compile(
    rf"(?:(?<![\w)\]])[-+−])?[{CURRENCY}]?\d+(?:,\d{{3}}(?!\d))*(?:\.\d+)*"
    rf"(?:(?:[/⁄:：]\d+(?:\.\d+)?)+|{_SP}?[{VULGAR_FRACTIONS}]|{_SP}\d+[/⁄]\d+(?![\d/⁄:：]|\.\d))?"
    rf"(?:[eE][-+−]?\d+)?{_POWER}?(?:{_SP}?[×x*·⋅]{_SP}?10{_POWER})?[{PERCENT}]?{_VALUE_UNIT}?"
    rf"|[{VULGAR_FRACTIONS}]{_VALUE_UNIT}?")
# a "/" between two words ("km/h", "m/s", "and/or", "公里/小时") is no division: with span presets the words and the
# slash are one unit, so that "math" (which keeps operators) never keeps half of "km/h"
WORD_SLASH = re.compile(r"(?<![\w/])[A-Za-zµμ°]+(?:/[A-Za-zµμ°]+)+(?![\w/])"
                        rf"|{_CJK_UNIT}(?:[/／]{_CJK_UNIT})+")  # CJK text has no spaces: unit words ("公里/小时")
# code: a fenced block opens with a fence at the start of a line (up to 3 spaces in, as Markdown has it: a
# "```" inside a sentence opens nothing) and runs to the next such fence of the same kind and length or,
# unclosed, to the end of the text; an inline span is 1 or 2 backticks around text on one line (outside
# fenced blocks)
FENCED_CODE = re.compile(r"(?:(?<=\n)|^)[ ]{0,3}(`{3,}|~{3,}).*?(?:(?<=\n)[ ]{0,3}\1(?![`~])|\Z)", re.S)
INLINE_CODE = re.compile(r"(?<!`)(`{1,2})(?!`)[^\n]*?(?<!`)\1(?!`)")


def _braces(depth: int) -> str:
    """Regex for a brace group `{...}` whose braces nest up to `depth` levels deep."""
    inner = r"[^{}]" if depth <= 1 else r"[^{}]|" + _braces(depth - 1)
    return r"\{(?:" + inner + r")*\}"


LATEX_BRACE_DEPTH = 8  # brace groups nested deeper than this are not kept whole
LATEX = re.compile(
    r"\$\$.+?\$\$|\\\(.+?\\\)|(?<!\\)\\\[.+?\\\]"  # display and paired delimiters (not the line break \\[2pt])
    r"|\$[^$\n]*[\\^_{}][^$\n]*\$"  # inline $...$ holding math markup (not two prices)
    r"|\\[A-Za-z]+(?:\[[^\]\[{}\n]*\]|" + _braces(LATEX_BRACE_DEPTH) + r")*",  # a command with its [option] and {brace} groups
    re.S)
OPERATOR = re.compile(r"[+\-*/=×÷^<>≤≥≠±√∑∏∫−]")
# a "-" or "+" right after a letter, digit or closing bracket and before a number is subtraction or a
# hyphen ("a-5", "3e-5", "2024-03-15"), no sign (`NUMBER`): with span presets it stays with the character
# before it, so that removing that character never turns it into a sign ("= -5")
UNSIGNED_MINUS = re.compile(rf"(?<=[\w)\]])[-+−](?=[{CURRENCY}]?\d)")
