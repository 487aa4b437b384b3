"""valgrind's options translated to gdb-memleak's before argparse reads them (cli/valgrind_options.py)."""

from __future__ import annotations

import pytest

from gdb_memleak.cli.main import build_parser, option_arities
from gdb_memleak.cli.valgrind_options import OptionError, expand_log_name, translate

OWN = option_arities(build_parser())


def parsed(*argv: str):
    return build_parser().parse_args(translate(list(argv), OWN).args)


def test_ctests_default_valgrind_options_map_onto_todays():
    opts = parsed("-q", "--tool=memcheck", "--leak-check=yes", "--show-reachable=yes", "--num-callers=50",
                  "--log-file=/tmp/x.log", "./prog", "--leak-check=no")
    assert opts.quiet and opts.depth == 49 and opts.valgrind_num_callers == 50
    assert opts.show_leak_kinds == build_parser().parse_args(["--show-leak-kinds", "all", "p"]).show_leak_kinds
    assert getattr(opts, "log-file") == "/tmp/x.log"
    assert opts.program == "./prog" and opts.args == ["--leak-check=no"]  # the program's arguments untouched


def test_equals_forms_of_todays_options_and_xml_yes_with_its_file():
    opts = parsed("--xml=yes", "--xml-file=out.xml", "--error-exitcode=3", "--suppressions=a.supp",
                  "--suppressions=b.supp", "--errors-for-leak-kinds=all", "--gen-suppressions=all", "-v", "prog")
    assert getattr(opts, "xml-file") == "out.xml" and opts.error_exitcode == 3
    assert opts.suppressions == ["a.supp", "b.supp"] and opts.gen_suppressions and opts.verbose


@pytest.mark.parametrize("mode", ["summary", "no"])
def test_leak_check_summary_lists_no_loss_record_whatever_comes_after(mode: str):
    opts = parsed(f"--leak-check={mode}", "--show-leak-kinds=all", "prog")
    assert opts.show_leak_kinds == frozenset() and opts.errors_for_leak_kinds == frozenset()


def test_options_meaning_nothing_here_are_named_in_one_note():
    translation = translate(["--track-origins=yes", "--vgdb=no", "--leak-resolution=high", "--time-stamp=yes",
                             "--json", "r.json", "prog"], OWN)
    assert translation.args == ["--json", "r.json", "prog"]
    assert translation.note() == ("gdb-memleak: note: valgrind options that change nothing here, ignored: "
                                  "--track-origins=yes --vgdb=no --leak-resolution=high --time-stamp=yes")
    assert translate(["prog"], OWN).note() is None


@pytest.mark.parametrize(("argv", "message"), [
    (["--frobnicate", "prog"], "unknown option --frobnicate"),
    (["--js=r.json", "prog"], "unknown option --js=r.json"),  # no abbreviation of ours either
    (["--tool=helgrind", "prog"], "--tool=helgrind: gdb-memleak is memcheck only"),
    (["--xml=yes", "prog"], "--xml=yes has been specified, but there is no XML output destination"),
    (["--leak-check=maybe", "prog"], "--leak-check=maybe: valgrind's values are full, yes, summary, no"),
    (["--num-callers=0", "prog"], "--num-callers=0: a number from 1 to 500"),
])
def test_bad_options_are_one_clear_error(argv: list[str], message: str):
    with pytest.raises(OptionError, match="^" + message.replace("[", r"\[").replace("(", r"\(")):
        translate(argv, OWN)


def test_log_file_names_take_environment_variables_and_keep_percent_p():
    assert expand_log_name("/t/%q{JOB}.%p.log", {"JOB": "7"}) == "/t/7.%p.log"
    with pytest.raises(OptionError, match="JOB is not set"):
        expand_log_name("%q{JOB}.log", {})
