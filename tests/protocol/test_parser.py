"""parse_request: every request form of PROTOCOL.md, every typed error, and fuzzing."""

import dataclasses
from itertools import islice

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.workload import open_text, shipped
from protocol import commands as c
from protocol import parser as parser_module
from protocol.errors import (
    BadAmount,
    BadFilename,
    BadPassword,
    BadSymbol,
    BadTxn,
    BadUserId,
    ErrorCode,
    LineTooLong,
    MalformedLine,
    ProtocolError,
    UnknownCommand,
    WrongArity,
)
from protocol.parser import MAX_LINE_BYTES, _parse_general, parse_request

BUY = c.Buy("u1", "ABC", 10_000)


def fails(line, error_type):
    """The error parse_request raises for `line`, checked to be exactly `error_type`."""
    with pytest.raises(ProtocolError) as info:
        parse_request(line)
    assert type(info.value) is error_type, info.value
    return info.value


# --- accepted forms -------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "txn"), [
    ("[12] BUY,u1,ABC,100.00", 12),
    ("[12]BUY,u1,ABC,100.00", 12),
    ("[ 12 ] BUY,u1,ABC,100.00", 12),
    ("[007] BUY,u1,ABC,100.00", 7),
    ("[999999999999999999] BUY,u1,ABC,100.00", 999_999_999_999_999_999),
    ("$ BUY,u1,ABC,100.00", None),
    ("BUY,u1,ABC,100.00", None),
])
def test_txn_prefix_forms(line, txn):
    assert parse_request(line) == dataclasses.replace(BUY, txn=txn)


@pytest.mark.parametrize("line", [
    "BUY,u1,ABC,100.00 ",
    "BUY,u1,ABC,100.00   \t",
    "BUY,u1,ABC,100.00\n",
    "BUY,u1,ABC,100.00\r\n",
    b"BUY,u1,ABC,100.00\r\n",
    b"BUY,u1,ABC,100.00\n",
    b"BUY,u1,ABC,100.00",
    "BUY,u1,ABC,100.00 \r\n",
])
def test_line_endings_and_trailing_spaces_are_ignored(line):
    assert parse_request(line) == BUY


@pytest.mark.parametrize("name", ["buy", "Buy", "bUY", "BUY"])
def test_command_names_are_case_insensitive(name):
    assert parse_request(f"{name},u1,ABC,100.00") == BUY


def test_arguments_are_case_sensitive():
    assert parse_request("buy,U1,ABC,100.00").user == "U1"
    fails("BUY,u1,abc,100.00", BadSymbol)


def test_spaces_around_fields_are_trimmed():
    assert parse_request("[12]  BUY , u1 ,\tABC\t,  100.00  ") == dataclasses.replace(BUY, txn=12)


@pytest.mark.parametrize(("line", "password"), [
    ("LOGIN,u1,password", "password"),
    ("LOGIN,u1, pass,word ", " pass,word "),
    ("LOGIN, u1 ,,,,,,,,,", ",,,,,,,,"),
    ("LOGIN,u1,\tsecret with spaces\t", "\tsecret with spaces\t"),
    ("LOGIN,u1," + "p" * 128, "p" * 128),
])
def test_password_is_everything_after_the_second_comma_untrimmed(line, password):
    assert parse_request(line) == c.Login("u1", password)
    assert parse_request("PASSWD" + line[5:]) == c.Passwd("u1", password)


def test_password_keeps_trailing_spaces_but_not_the_line_ending():
    assert parse_request(b"LOGIN,u1,password  \r\n").password == "password  "


@pytest.mark.parametrize(("line", "cmd"), [
    ("ADD,u1,1", c.Add("u1", 100)),
    ("QUOTE,u1,A", c.Quote("u1", "A")),
    ("SELL,u1,XYZ,0.01", c.Sell("u1", "XYZ", 1)),
    ("COMMIT_BUY,u1", c.CommitBuy("u1")),
    ("CANCEL_BUY,u1", c.CancelBuy("u1")),
    ("COMMIT_SELL,u1", c.CommitSell("u1")),
    ("CANCEL_SELL,u1", c.CancelSell("u1")),
    ("SET_BUY_AMOUNT,u1,AB,5.5", c.SetBuyAmount("u1", "AB", 550)),
    ("SET_BUY_TRIGGER,u1,AB,5.50", c.SetBuyTrigger("u1", "AB", 550)),
    ("CANCEL_SET_BUY,u1,AB", c.CancelSetBuy("u1", "AB")),
    ("SET_SELL_AMOUNT,u1,AB,9999999999.99", c.SetSellAmount("u1", "AB", 999_999_999_999)),
    ("SET_SELL_TRIGGER,u1,AB,1", c.SetSellTrigger("u1", "AB", 100)),
    ("CANCEL_SET_SELL,u1,AB", c.CancelSetSell("u1", "AB")),
    ("DISPLAY_SUMMARY,u1", c.DisplaySummary("u1")),
    ("DISPLAY_SUMMARY,u1, 40 ", c.DisplaySummary("u1", 40)),
    ("DUMPLOG,./testLOG", c.DumpLog("./testLOG")),
    ("DUMPLOG,u1,out file.xml", c.DumpLog("out file.xml", "u1")),
    ("AUTH, token ", c.Auth("token")),
    ("WATCH,u1", c.Watch("u1")),
    ("STATS", c.Stats()),
    ("PING", c.Ping()),
    ("QUIT ", c.Quit()),
    ("HELP", c.Help()),
    ("help, buy ", c.Help("BUY")),
    ("OLDPASSWD,u1,old,pass word", c.OldPasswd("u1", "old,pass word")),
    ("ADD,_,1", c.Add("_", 100)),
    ("ADD," + "a" * 32 + ",1", c.Add("a" * 32, 100)),
])
def test_every_command_form(line, cmd):
    assert parse_request(line) == cmd


def test_every_line_of_a_shipped_workload_parses_except_its_one_bad_amount():
    failures = []
    with open_text(shipped("10user.txt")) as f:
        for line in f:
            try:
                parse_request(line)
            except ProtocolError as exc:
                failures.append((type(exc), exc.txn, exc.user))
    assert failures == [(BadAmount, 9962, "umhaEY4lil")]


# --- line length ------------------------------------------------------------------------------


def padded(length: int, ending: bytes = b"") -> bytes:
    """A valid ADD line padded with trailing spaces to `length` bytes before `ending`."""
    line = b"ADD,u1,1"
    return line + b" " * (length - len(line)) + ending


@pytest.mark.parametrize("ending", [b"", b"\n", b"\r\n"])
def test_line_of_exactly_1024_bytes_is_accepted(ending):
    assert parse_request(padded(MAX_LINE_BYTES, ending)) == c.Add("u1", 100)
    assert parse_request(padded(MAX_LINE_BYTES, ending).decode()) == c.Add("u1", 100)


@pytest.mark.parametrize("ending", [b"", b"\n", b"\r\n"])
def test_line_of_1025_bytes_is_too_long(ending):
    error = fails(padded(MAX_LINE_BYTES + 1, ending), LineTooLong)
    assert error.code is ErrorCode.BAD_REQUEST
    fails(padded(MAX_LINE_BYTES + 1, ending).decode(), LineTooLong)


def test_line_length_counts_utf8_bytes_not_characters():
    # 2-byte characters: 509 of them plus the 8-byte "ADD,u1,1" and 'x' is 1027 bytes, 518 chars.
    line = "ADD,u1,1" + "\u00e9" * 509 + "x"
    fails(line, LineTooLong)
    fails(line.encode(), LineTooLong)


def test_huge_line_is_too_long():
    fails(b"A" * 100_000, LineTooLong)
    fails("A" * 100_000, LineTooLong)


# --- malformed lines --------------------------------------------------------------------------


@pytest.mark.parametrize("line", [
    "", " ", "\r\n", "[", "[12", "[0] ADD,u1,1", "[-1] ADD,u1,1", "[+1] ADD,u1,1", "[abc] ADD,u1,1",
    "[1.5] ADD,u1,1", "[] ADD,u1,1", "[\u0661] ADD,u1,1", "[1234567890123456789] ADD,u1,1",
    ",u1,1", "$ ", b"\xff\xfeADD,u1,1", b"ADD,u1,\xc3", "AUTH,", "AUTH," + "t" * 257,
])
def test_malformed_lines_fail_bad_request(line):
    error = fails(line, MalformedLine)
    assert error.code is ErrorCode.BAD_REQUEST


def test_empty_command_after_txn_carries_the_txn():
    assert fails("[5]", MalformedLine).txn == 5
    assert fails("[5]   ", MalformedLine).txn == 5


# --- unknown commands and arity ---------------------------------------------------------------


@pytest.mark.parametrize("line", [
    "FOO,u1", "BUYX,u1,ABC,1", "B\u00dcY,u1,ABC,1", "\u00dfUY", "B\x00UY,u1,ABC,1",
    "COMMIT BUY,u1", "$BUY,u1,ABC,1", "$  [3] BUY,u1,ABC,1",
])
def test_unknown_command_names_fail_unknown_command(line):
    error = fails(line, UnknownCommand)
    assert error.code is ErrorCode.UNKNOWN_COMMAND and error.command is None


@pytest.mark.parametrize(("line", "command"), [
    ("ADD", "ADD"), ("ADD,u1", "ADD"), ("ADD,u1,1,2", "ADD"),
    ("QUOTE,u1", "QUOTE"), ("BUY,u1,ABC", "BUY"), ("BUY,u1,ABC,1,", "BUY"),
    ("SELL,u1", "SELL"), ("COMMIT_BUY", "COMMIT_BUY"), ("COMMIT_BUY,u1,x", "COMMIT_BUY"),
    ("CANCEL_SET_SELL,u1", "CANCEL_SET_SELL"), ("SET_BUY_TRIGGER,u1,A", "SET_BUY_TRIGGER"),
    ("DISPLAY_SUMMARY", "DISPLAY_SUMMARY"), ("DISPLAY_SUMMARY,u1,1,2", "DISPLAY_SUMMARY"),
    ("DUMPLOG", "DUMPLOG"), ("DUMPLOG,u1,f,g", "DUMPLOG"), ("LOGIN,u1", "LOGIN"),
    ("PASSWD", "PASSWD"), ("WATCH", "WATCH"), ("PING,x", "PING"), ("STATS,x", "STATS"),
    ("AUTH", "AUTH"), ("AUTH,a,b", "AUTH"), ("quit,now", "QUIT"),
])
def test_wrong_number_of_arguments_fails_bad_argument(line, command):
    error = fails(f"[3] {line}", WrongArity)
    assert (error.code, error.txn, error.command) == (ErrorCode.BAD_ARGUMENT, 3, command)


# --- amounts ----------------------------------------------------------------------------------

BAD_AMOUNTS = [
    "-5", "0", "0.00", "0.0", "NaN", "nan", "inf", "-inf", "1e309", "1e3", "1_000", "1'000",
    "\u0665", "\u0661\u0660", "\uff15", "10.001", "", "   ", "5" * 5000, "12345678901", "+5",
    ".5", "5.", "5 5", "$5", "0x10", "5\x00",
]


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
@pytest.mark.parametrize("template", [
    "ADD,u1,{}", "BUY,u1,ABC,{}", "SELL,u1,ABC,{}", "SET_BUY_AMOUNT,u1,ABC,{}",
    "SET_SELL_AMOUNT,u1,ABC,{}", "SET_BUY_TRIGGER,u1,ABC,{}", "SET_SELL_TRIGGER,u1,ABC,{}",
])
def test_bad_amounts_fail_bad_argument(template, amount):
    line = template.format(amount)
    if len(line.encode()) > MAX_LINE_BYTES:
        fails(line, LineTooLong)
        return
    error = fails("[4] " + line, BadAmount)
    assert (error.code, error.txn, error.user) == (ErrorCode.BAD_ARGUMENT, 4, "u1")
    assert error.command == line.split(",")[0]


def test_five_thousand_digit_amount_in_a_short_enough_line_fails_bad_amount():
    error = fails("ADD,u1," + "5" * 1000, BadAmount)
    assert "..." in error.message  # the quoted field is cut short


@pytest.mark.parametrize(("amount", "cents"), [
    (" 5 ", 500), ("\t5", 500), ("0.01", 1), ("9999999999.99", 999_999_999_999), ("5.5", 550),
])
def test_good_amounts_are_trimmed_and_read_as_cents(amount, cents):
    assert parse_request(f"ADD,u1,{amount}") == c.Add("u1", cents)


@pytest.mark.parametrize(("amount", "says"), [
    ("-5.00", "must be positive and written without a sign"),
    ("+5", "must be positive and written without a sign"),
    ("1" * 23, "is too large: at most 9999999999.99"),
    ("12345678901.5", "is too large: at most 9999999999.99"),
    ("10.001", "has more than two decimals"),
    ("5.", "needs digits after its decimal point"),
    (".50", "needs a digit before its decimal point"),
    ("1e3", "is not a number"),
    ("NaN", "is not a number"),
    ("", "is empty"),
    ("0", "must be greater than zero"),
])
def test_amount_errors_say_what_is_wrong(amount, says):
    error = fails(f"ADD,u1,{amount}", BadAmount)
    assert error.code == ErrorCode.BAD_ARGUMENT
    assert error.message.startswith(f"amount {says}"), error.message


def test_bad_price_names_price_in_its_message():
    assert "price" in fails("SET_BUY_TRIGGER,u1,ABC,0", BadAmount).message
    assert "amount" in fails("SET_BUY_AMOUNT,u1,ABC,0", BadAmount).message


# --- user ids, symbols, filenames, passwords, before_txn ---------------------------------------

BAD_USERS = ["$", ".", "\x00", "u\x00", "\x01", "u\x1b[31m", "\x7f", "<", "<u>", "]]>", "a" * 33,
             "", "u 1", "u-1", "\u00fc", "\u0661", "u\r1", "u\n1"]


@pytest.mark.parametrize("user", BAD_USERS)
@pytest.mark.parametrize("template", [
    "ADD,{},1", "QUOTE,{},ABC", "BUY,{},ABC,1", "COMMIT_BUY,{}", "CANCEL_SET_SELL,{},ABC",
    "DISPLAY_SUMMARY,{}", "DUMPLOG,{},f", "LOGIN,{},password", "PASSWD,{},password", "WATCH,{}",
])
def test_bad_user_ids_fail_bad_argument_and_are_not_carried(template, user):
    error = fails("[8] " + template.format(user), BadUserId)
    assert (error.code, error.txn, error.user) == (ErrorCode.BAD_ARGUMENT, 8, None)
    assert error.command == template.split(",")[0]
    assert repr(user.strip(" \t"))[:20] in error.message  # quoted, control characters escaped


@pytest.mark.parametrize("symbol", ["abc", "Abc", "ABCD", "A1", "1", "", "\u00c4", "A_B", "A\x00"])
@pytest.mark.parametrize("template", [
    "QUOTE,u1,{}", "BUY,u1,{},1", "SELL,u1,{},1", "SET_BUY_AMOUNT,u1,{},1",
    "SET_SELL_TRIGGER,u1,{},1", "CANCEL_SET_BUY,u1,{}", "CANCEL_SET_SELL,u1,{}",
])
def test_bad_symbols_fail_bad_argument_and_carry_the_user(template, symbol):
    error = fails("[2] " + template.format(symbol), BadSymbol)
    assert (error.code, error.txn, error.user) == (ErrorCode.BAD_ARGUMENT, 2, "u1")


@pytest.mark.parametrize("filename", ["a\x00b", "", "  ", "a\tb", "a\x1bb", "a\x7f", "f" * 256])
def test_bad_filenames_fail_bad_argument(filename):
    assert fails(f"DUMPLOG,{filename}", BadFilename).user is None
    error = fails(f"[6] DUMPLOG,u1,{filename}", BadFilename)
    assert (error.code, error.txn, error.user, error.command) == (
        ErrorCode.BAD_ARGUMENT, 6, "u1", "DUMPLOG")


def test_filename_of_255_characters_is_accepted():
    assert parse_request("DUMPLOG," + "f" * 255) == c.DumpLog("f" * 255)


@pytest.mark.parametrize("password", ["", "1234567", " 234567", "p" * 129])
@pytest.mark.parametrize("name", ["LOGIN", "PASSWD"])
def test_passwords_outside_8_to_128_characters_fail(name, password):
    error = fails(f"[1] {name},u1,{password}", BadPassword)
    assert (error.code, error.txn, error.user, error.command) == (
        ErrorCode.BAD_ARGUMENT, 1, "u1", name)
    assert password not in error.message or not password


@pytest.mark.parametrize("before", ["0", "-1", "x", "", "1.5", "1e3", "\u0661", "9" * 19])
def test_bad_before_txn_fails_bad_argument(before):
    error = fails(f"[3] DISPLAY_SUMMARY,u1,{before}", BadTxn)
    assert (error.code, error.txn, error.user) == (ErrorCode.BAD_ARGUMENT, 3, "u1")


def test_first_bad_field_decides_the_error():
    fails("BUY,u$,abc,-1", BadUserId)
    fails("BUY,u1,abc,-1", BadSymbol)
    fails("BUY,u1,ABC,-1,extra", WrongArity)


# --- fuzzing ----------------------------------------------------------------------------------


def _sample_lines() -> list[str]:
    lines = []
    for name in ("10user.txt", "final_2019_by_user.txt"):
        with open_text(shipped(name)) as f:
            lines.extend(line.rstrip("\n") for line in islice(f, 3000))
    return lines


WORKLOAD_LINES = _sample_lines()
TRICKY = ",.[]$ \t\r\n\x00\u00e9\u0661-+_eE"


@st.composite
def mutated_lines(draw) -> str:
    line = draw(st.sampled_from(WORKLOAD_LINES))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(line)))
        char = draw(st.characters() | st.sampled_from(TRICKY))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        if op == "insert":
            line = line[:pos] + char + line[pos:]
        elif op == "delete":
            line = line[:pos] + line[pos + 1:]
        else:
            line = line[:pos] + char + line[pos + 1:]
    return line


def check_parse(line) -> None:
    """parse_request either returns a command or raises a ProtocolError (nothing else), and
    whatever it returns renders to a canonical line that parses back to itself."""
    try:
        cmd = parse_request(line)
    except ProtocolError as exc:
        assert isinstance(exc.code, ErrorCode)
        assert isinstance(exc.message, str) and exc.message
        return
    assert isinstance(cmd, c.Command)
    if not isinstance(cmd, (c.Auth, c.Login, c.Passwd)):  # those mask their secret in line()
        assert parse_request(f"[77] {cmd.line()}") == dataclasses.replace(cmd, txn=77)


FUZZ = settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.text())
def test_any_text_parses_or_fails_with_a_protocol_error(line):
    check_parse(line)


@FUZZ
@given(st.binary())
def test_any_bytes_parse_or_fail_with_a_protocol_error(line):
    check_parse(line)


@FUZZ
@given(mutated_lines())
def test_mutated_workload_lines_parse_or_fail_with_a_protocol_error(line):
    check_parse(line)
    check_parse(line.encode("utf-8", "surrogatepass"))


users = st.from_regex(r"[A-Za-z0-9_]{1,32}", fullmatch=True)
symbols = st.from_regex(r"[A-Z]{1,3}", fullmatch=True)
amounts = st.integers(min_value=1, max_value=999_999_999_999)
txns = st.integers(min_value=1, max_value=10**18 - 1)
filenames = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters=","),
    min_size=1, max_size=120,
).filter(lambda s: s == s.strip(" \t"))

commands = st.one_of(
    st.builds(c.Add, users, amounts),
    st.builds(c.Quote, users, symbols),
    *[st.builds(cls, users, symbols, amounts)
      for cls in (c.Buy, c.Sell, c.SetBuyAmount, c.SetSellAmount, c.SetBuyTrigger,
                  c.SetSellTrigger)],
    *[st.builds(cls, users) for cls in (c.CommitBuy, c.CancelBuy, c.CommitSell, c.CancelSell,
                                        c.Watch)],
    *[st.builds(cls, users, symbols) for cls in (c.CancelSetBuy, c.CancelSetSell)],
    st.builds(c.DisplaySummary, users, st.none() | txns),
    st.builds(c.DumpLog, filenames, st.none() | users),
    st.sampled_from([c.Stats(), c.Ping(), c.Quit()]),
)


@settings(max_examples=3000, deadline=None)
@given(commands, txns)
def test_every_valid_command_round_trips_through_its_line(cmd, txn):
    line = f"[{txn}] {cmd.line()}"
    assert parse_request(line) == dataclasses.replace(cmd, txn=txn)
    assert parse_request(f"$ {cmd.line()}\r\n".encode()) == cmd
    name, _, rest = cmd.line().partition(",")
    assert parse_request(f"{name.lower()},{rest}" if rest else name.lower()) == cmd


# --- the fast path agrees with the general parser ----------------------------------------------


def outcome(parse, line):
    """A command, or the kind and content of the error it raised."""
    try:
        return parse(line)
    except ProtocolError as exc:
        return type(exc), exc.message, exc.txn, exc.command, exc.user


@st.composite
def canonical_variants(draw) -> str:
    """Canonical lines and their near misses: prefixes, cases, line endings, zeros, spacing."""
    cmd = draw(commands)
    line = cmd.line()
    name, sep, rest = line.partition(",")
    name = draw(st.sampled_from([name, name.lower(), name.title(), name[:-1]]))
    if draw(st.booleans()) and rest:
        rest = draw(st.sampled_from([rest + ",0", rest.replace(".", ".0"), rest + ".00",
                                     rest.rsplit(",", 1)[0] + ",0.00", rest.replace(",", ", ")]))
    prefix = draw(st.sampled_from(["", "$ ", "[{t}] ", "[{t}]", "[0{t}] ", "[{t}]  ", "[0] ",
                                   "$", " ", "[ {t} ] "])).format(t=draw(txns))
    ending = draw(st.sampled_from(["", " ", "   ", "\n", "\r\n", " \r\n", "\r", "\t", "\r \n"]))
    return prefix + name + sep + rest + ending


@FUZZ
@given(canonical_variants() | mutated_lines() | st.text(max_size=60))
def test_fast_path_agrees_with_the_general_parser(line):
    assert outcome(parse_request, line) == outcome(_parse_general, line)
    data = line.encode("utf-8", "surrogatepass")
    assert outcome(parse_request, data) == outcome(_parse_general, data)


@pytest.mark.parametrize("line", [
    "[1] ADD,u1,1.00 \n", "$ QUOTE,u1,ABC\n", "BUY,u1,ABC,5", "[2]sell,u1,A,0.5\r\n",
    "SET_BUY_AMOUNT,u1,AB,1", "SET_BUY_TRIGGER,u1,AB,1", "SET_SELL_AMOUNT,u1,AB,1",
    "SET_SELL_TRIGGER,u1,AB,1", "COMMIT_BUY,u1", "CANCEL_BUY,u1", "COMMIT_SELL,u1",
    "CANCEL_SELL,u1", "CANCEL_SET_BUY,u1,AB", "CANCEL_SET_SELL,u1,AB", "DISPLAY_SUMMARY,u1",
    b"[3] BUY,u1,ABC,5.00\n",
])
def test_canonical_trading_lines_take_the_fast_path(monkeypatch, line):
    expected = _parse_general(line)

    def general(_line):
        raise AssertionError("the general parser was used")

    monkeypatch.setattr(parser_module, "_parse_general", general)
    assert parse_request(line) == expected
