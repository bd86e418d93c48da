.POSIX:
.SUFFIXES:

PREFIX = /usr/local
BINDIR = $(PREFIX)/bin
MANDIR = $(PREFIX)/share/man
BASHCOMPDIR = $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR = $(PREFIX)/share/zsh/site-functions
CC = cc
CFLAGS = -O2 -g
PKG_CONFIG = pkg-config
VERSION = 0.1.0

# Our warnings are added to whatever CFLAGS the user gives.
WARN = -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -Wshadow \
	-Wstrict-prototypes -Wmissing-prototypes -Wformat=2
LIBS_PC = libcjson libsodium libcurl
# libcurl is dlopen()ed when a cache is queried (lib/curlload.h): not linked.
# Its directory is compiled in, for where the loader would not look (Nix).
LIBS_LINK = `$(PKG_CONFIG) --libs libcjson libsodium` -ldl
CURL_DIR = -DNRR_LIBCURL_DIR="\"`$(PKG_CONFIG) --variable=libdir libcurl`\""

PROG = nixos-rebuild-remote
OBJS = lib/strbuf.o lib/strvec.o lib/quote.o lib/error.o lib/run.o lib/pump.o \
	lib/action.o lib/options.o lib/ssh.o lib/sshconfig.o lib/host.o lib/nix.o lib/closure.o lib/closuredb.o \
	lib/activate.o lib/localdiff.o lib/generations.o lib/deploy.o lib/deployplan.o lib/complete.o \
	lib/narinfo.o lib/nixconf.o lib/cache.o lib/curlload.o lib/pkgdiff.o lib/session.o \
	lib/fleet.o lib/fleethost.o lib/progress.o lib/build.o lib/platform.o lib/diffshow.o lib/report.o lib/prompt.o \
	lib/fleetview.o lib/scripts.o lib/fleetproto.o lib/fleetbuild.o lib/hive.o lib/hive-evalnix.o lib/colmena.o \
	lib/keys.o lib/deploykeys.o lib/editrepl.o lib/exec.o lib/profileguard.o lib/reboot.o lib/pushto.o \
	lib/hiveexec.o lib/hiveeval.o lib/evalcache.o lib/colmenaopts.o lib/colmenabuild.o lib/resources.o \
	lib/cachedir.o lib/closurecache.o lib/serveproto.o lib/serve.o lib/narexport.o lib/daemon.o \
	lib/optcheck.o lib/exportcheck.o lib/async.o lib/fleetpush.o lib/fleetprep.o lib/rollback.o lib/fiber.o lib/rundir.o
TOOL_OBJS = tests/test-tool.o tests/test-tool-cache.o tests/test-tool-diff.o tests/test-tool-fleet.o \
	tests/test-tool-hive.o tests/test-tool-remote.o tests/test-tool-daemon.o
HDRS = lib/strbuf.h lib/strvec.h lib/quote.h lib/error.h lib/run.h lib/pump.h \
	lib/action.h lib/options.h lib/ssh.h lib/sshconfig.h lib/host.h lib/nix.h lib/closure.h lib/closuredb.h \
	lib/activate.h lib/localdiff.h lib/generations.h lib/deploy.h lib/deployplan.h lib/complete.h \
	lib/narinfo.h lib/nixconf.h lib/cache.h lib/curlload.h lib/pkgdiff.h lib/session.h \
	lib/build.h lib/fleet.h lib/fleethost.h lib/progress.h lib/platform.h lib/diffshow.h lib/fleetview.h lib/report.h lib/prompt.h \
	lib/scripts.h lib/fleetproto.h lib/fleetbuild.h lib/hive.h lib/colmena.h \
	lib/keys.h lib/deploykeys.h lib/editrepl.h lib/exec.h lib/profileguard.h lib/reboot.h lib/pushto.h \
	lib/hiveexec.h lib/hiveeval.h lib/evalcache.h lib/colmenaopts.h lib/colmenabuild.h lib/resources.h \
	lib/cachedir.h lib/closurecache.h lib/serveproto.h lib/serve.h lib/daemon.h lib/narexport.h \
	lib/optcheck.h lib/exportcheck.h lib/async.h lib/fleetpush.h lib/fleetprep.h lib/rollback.h lib/fiber.h lib/rundir.h
# The remote scripts, embedded by lib/gen-scripts.sh into lib/scripts.c and
# lib/scripts.h (generated, not committed); NAME.def holds what a script and
# its C caller agree on.
SCRIPTS = lib/scripts/activate.sh lib/scripts/booted.sh lib/scripts/closure.sh lib/scripts/confirm.sh \
	lib/scripts/current.sh lib/scripts/direct.sh lib/scripts/dumpdb.sh lib/scripts/export.sh \
	lib/scripts/generations.sh lib/scripts/hostname.sh lib/scripts/import.sh lib/scripts/keys.sh \
	lib/scripts/profile.sh lib/scripts/pushcache.sh lib/scripts/query.sh lib/scripts/realise.sh lib/scripts/reboot.sh \
	lib/scripts/run0.sh lib/scripts/serve.sh lib/scripts/size.sh lib/scripts/unroot.sh
SCRIPT_DEFS = lib/scripts/activate.def lib/scripts/generations.def lib/scripts/keys.def \
	lib/scripts/pushcache.def lib/scripts/query.def lib/scripts/reboot.def

all: $(PROG) tests/test-tool

.deps-ok:
	@$(PKG_CONFIG) --exists $(LIBS_PC) || { \
	  echo "error: missing libraries: $(LIBS_PC) (Debian: apt-get install libcjson-dev libsodium-dev libcurl4-openssl-dev pkg-config)" >&2; \
	  echo "hint: 'sh tests/deps.sh' installs everything as root" >&2; exit 1; }
	@touch $@

lib/scripts.h: lib/gen-scripts.sh $(SCRIPTS) $(SCRIPT_DEFS)
	sh lib/gen-scripts.sh h $(SCRIPTS) >$@.tmp && mv $@.tmp $@

lib/scripts.c: lib/gen-scripts.sh $(SCRIPTS) $(SCRIPT_DEFS)
	sh lib/gen-scripts.sh c $(SCRIPTS) >$@.tmp && mv $@.tmp $@

.SUFFIXES: .c .o
.c.o:
	$(CC) $(CFLAGS) $(WARN) -DNRR_VERSION='"$(VERSION)"' $(CURL_DIR) `$(PKG_CONFIG) --cflags $(LIBS_PC)` -c -o $@ $<

$(OBJS) nixos-rebuild-remote.o $(TOOL_OBJS): $(HDRS) .deps-ok

# The hive evaluator travels inside the binary: lib/hive/eval.nix as a C
# string, handed to nix in the expression. Lines that start with '#' are
# left out as comments: none of its multi-line strings may have such a line.
lib/hive-evalnix.c: lib/hive/eval.nix
	{ echo '/* Made by the Makefile from lib/hive/eval.nix: do not edit. */'; \
	  echo '#include "hive.h"'; echo 'const char hive_eval_nix[] ='; \
	  sed -e '/^ *#/d' -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/?/\\?/g' \
	    -e 's/^/"/' -e 's/$$/\\n"/' lib/hive/eval.nix; echo ';'; } > $@.tmp && mv $@.tmp $@

$(PROG): nixos-rebuild-remote.o $(OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ nixos-rebuild-remote.o $(OBJS) $(LIBS_LINK)

# test-tool looks at every block our code frees or moves (keys-no-copy)
TOOL_LINK = -Wl,--wrap=free,--wrap=realloc
tests/test-tool: $(TOOL_OBJS) $(OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) $(TOOL_LINK) -o $@ $(TOOL_OBJS) $(OBJS) $(LIBS_LINK)

# A second build with AddressSanitizer and UBSan; any report fails the test
# that triggered it (halt_on_error, and UBSan made fatal).
SAN_CFLAGS = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
san: .deps-ok lib/scripts.c lib/scripts.h lib/hive-evalnix.c
	mkdir -p build-san/lib build-san/tests
	for f in nixos-rebuild-remote $(OBJS:.o=) $(TOOL_OBJS:.o=); do \
	  $(CC) $(SAN_CFLAGS) $(WARN) -DNRR_VERSION='"$(VERSION)"' $(CURL_DIR) `$(PKG_CONFIG) --cflags $(LIBS_PC)` \
	    -c -o build-san/$$f.o $$f.c || exit 1; done
	$(CC) $(SAN_CFLAGS) -o build-san/$(PROG) build-san/nixos-rebuild-remote.o \
	  `for o in $(OBJS); do printf ' build-san/%s' $$o; done` $(LIBS_LINK)
	$(CC) $(SAN_CFLAGS) $(TOOL_LINK) -o build-san/tests/test-tool `for o in $(TOOL_OBJS); do printf ' build-san/%s' $$o; done` \
	  `for o in $(OBJS); do printf ' build-san/%s' $$o; done` $(LIBS_LINK)
	# lib/fiber.c's switch where ours is not (not x86-64): it must still build
	$(CC) $(SAN_CFLAGS) $(WARN) -DFIBER_UCONTEXT -c -o build-san/lib/fiber-ucontext.o lib/fiber.c

deps:
	sh tests/deps.sh

# A short fuzzing run of every parser harness (`make fuzz` is the long one),
# then the suite: its files against the sanitizer build, those about the
# shipped build against it (tests/run-all.sh says which; its summary line is last).
# The fuzzing (clang's builds, then 5 s a harness) runs beside the two
# builds, each one compiler at a time: on two cores that is 40 s less than
# one after the other. The generated sources come first: both read them.
check: deps .deps-ok lib/scripts.c lib/scripts.h lib/hive-evalnix.c
	sh tests/fuzz/run.sh 5 & fuzz=$$!; \
	  $(MAKE) all san; built=$$?; \
	  wait $$fuzz; fuzzed=$$?; \
	  [ $$built = 0 ] && [ $$fuzzed = 0 ]
	sh tests/run-all.sh

FUZZ_SECONDS = 300
fuzz: .deps-ok
	sh tests/fuzz/run.sh $(FUZZ_SECONDS)

demo: deps all
	bash examples/demo/run.sh

install: $(PROG)
	mkdir -p $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR)
	cp -f $(PROG) $(DESTDIR)$(BINDIR)/
	chmod 755 $(DESTDIR)$(BINDIR)/$(PROG)
	cp -f man/$(PROG).8 $(DESTDIR)$(MANDIR)/man8/
	cp -f completions/$(PROG).bash $(DESTDIR)$(BASHCOMPDIR)/$(PROG)
	cp -f completions/_$(PROG) $(DESTDIR)$(ZSHCOMPDIR)/_$(PROG)

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/$(PROG) $(DESTDIR)$(MANDIR)/man8/$(PROG).8 \
	  $(DESTDIR)$(BASHCOMPDIR)/$(PROG) $(DESTDIR)$(ZSHCOMPDIR)/_$(PROG)

clean:
	rm -rf $(PROG) tests/test-tool *.o lib/*.o tests/*.o build-san .deps-ok \
	  lib/scripts.c lib/scripts.h lib/hive-evalnix.c

.PHONY: all san deps check demo install uninstall clean fuzz bench

bench: all
	bench/run
