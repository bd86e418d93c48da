#include "exportcheck.h"
#include "error.h"
#include "narinfo.h"
#include "serveproto.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT_MAGIC 0x4558494eULL	/* "NIXE" */
/* more references than any path has; each is checked as it comes, none
 * kept, but a count this large is no export */
#define MAX_REFS (1ULL << 20)

/* What the next item of the stream is (the grammar's state). */
enum expect {
	E_ENTRY,		/* u64: 1 for an entry, 0 for the end */
	E_NAR_MAGIC,		/* "nix-archive-1" */
	E_OPEN,			/* "(" opening a node */
	E_TYPE_KW,		/* "type" */
	E_TYPE,			/* "regular", "symlink" or "directory" */
	E_REG_FIELD,		/* "executable" or "contents" */
	E_EXEC_VALUE,		/* "" */
	E_CONTENTS_KW,		/* "contents", after "executable" */
	E_CONTENTS,		/* u64 length, then the bytes, counted down */
	E_TARGET_KW,		/* "target" */
	E_TARGET,		/* a symlink's target */
	E_CLOSE,		/* ")" ending a file or a symlink */
	E_DIR_FIELD,		/* "entry" or ")" ending the directory */
	E_ENTRY_OPEN,		/* "(" */
	E_NAME_KW,		/* "name" */
	E_NAME,			/* an entry's name */
	E_NODE_KW,		/* "node", then the entry's node */
	E_ENTRY_CLOSE,		/* ")" ending a directory entry */
	E_EXPORT_MAGIC,		/* u64 "NIXE" after the NAR */
	E_PATH,			/* the store path */
	E_NREFS,		/* u64 */
	E_REF,			/* a reference */
	E_DERIVER,		/* "" or a store path */
	E_SIG,			/* u64 0: no signature */
	E_END,			/* nothing more */
};

/* How much of the current item is read. */
enum reading {
	R_NUM,			/* a u64, or the length before a string */
	R_BYTES,		/* a string's bytes, kept in str */
	R_SKIP,			/* a file's contents, counted down */
	R_PAD,			/* zeros up to a multiple of 8 */
};

static int is_u64_item(int expect)
{
	return expect == E_ENTRY || expect == E_EXPORT_MAGIC || expect == E_NREFS ||
	       expect == E_SIG;
}

static void refuse(struct exportcheck *ck, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void refuse(struct exportcheck *ck, const char *fmt, ...)
{
	va_list ap;
	if (ck->failed)
		return;
	ck->failed = 1;
	va_start(ap, fmt);
	vsnprintf(ck->why, sizeof(ck->why), fmt, ap);
	va_end(ap);
}

/* The NAR of the entry being read is not one nix-store --dump writes. */
static void malformed(struct exportcheck *ck, const char *what)
{
	refuse(ck, "its export stream is malformed at byte %llu (entry %zu): %s",
	       ck->offset, ck->entries + 1, what);
}

void exportcheck_init(struct exportcheck *ck, const char *const *paths, size_t n)
{
	memset(ck, 0, sizeof(*ck));
	strindex_init(&ck->asked, paths, n);
	ck->seen = calloc(n ? n : 1, 1);
	if (!ck->seen)
		abort();
	ck->expect = E_ENTRY;
	ck->reading = R_NUM;
}

void exportcheck_release(struct exportcheck *ck)
{
	strindex_release(&ck->asked);
	free(ck->seen);
	ck->seen = NULL;
}

int exportcheck_done(const struct exportcheck *ck)
{
	return !ck->failed && ck->expect == E_END;
}

int exportcheck_finish(struct exportcheck *ck)
{
	if (exportcheck_done(ck))
		return 0;
	if (!ck->failed)
		refuse(ck, "its export stream ends before its end marker (after %zu entries)",
		       ck->entries);
	return -1;
}

static int str_is(const struct exportcheck *ck, const char *word)
{
	return ck->str_len == strlen(word) && !memcmp(ck->str, word, ck->str_len);
}

/* str (NUL-terminated by the caller) is a whole store path. */
static int str_store_path(const struct exportcheck *ck)
{
	return strlen(ck->str) == ck->str_len && nix_store_path_valid(ck->str);
}

/* The end of a node: of the NAR at depth 0, else of a directory's entry. */
static void node_end(struct exportcheck *ck)
{
	ck->expect = ck->depth ? E_ENTRY_CLOSE : E_EXPORT_MAGIC;
}

/* A word of the NAR's grammar: next if str is word, else refused. */
static void want_word(struct exportcheck *ck, const char *word, int next)
{
	char what[64];
	if (str_is(ck, word)) {
		ck->expect = next;
		return;
	}
	snprintf(what, sizeof(what), "expected \"%s\"", word);
	malformed(ck, what);
}

static void string_done(struct exportcheck *ck)
{
	char shown[256];

	ck->str[ck->str_len] = '\0';
	switch (ck->expect) {
	case E_NAR_MAGIC:
		ck->depth = 0;
		want_word(ck, "nix-archive-1", E_OPEN);
		break;
	case E_OPEN:
		want_word(ck, "(", E_TYPE_KW);
		break;
	case E_TYPE_KW:
		want_word(ck, "type", E_TYPE);
		break;
	case E_TYPE:
		if (str_is(ck, "regular"))
			ck->expect = E_REG_FIELD;
		else if (str_is(ck, "symlink"))
			ck->expect = E_TARGET_KW;
		else if (str_is(ck, "directory"))
			ck->expect = E_DIR_FIELD;
		else
			malformed(ck, "an unknown node type");
		break;
	case E_REG_FIELD:
		if (str_is(ck, "executable"))
			ck->expect = E_EXEC_VALUE;
		else
			want_word(ck, "contents", E_CONTENTS);
		break;
	case E_EXEC_VALUE:
		want_word(ck, "", E_CONTENTS_KW);
		break;
	case E_CONTENTS_KW:
		want_word(ck, "contents", E_CONTENTS);
		break;
	case E_TARGET_KW:
		want_word(ck, "target", E_TARGET);
		break;
	case E_TARGET:
		ck->expect = E_CLOSE;
		break;
	case E_CLOSE:
		if (str_is(ck, ")"))
			node_end(ck);
		else
			malformed(ck, "expected \")\"");
		break;
	case E_DIR_FIELD:
		if (str_is(ck, ")"))
			node_end(ck);
		else
			want_word(ck, "entry", E_ENTRY_OPEN);
		break;
	case E_ENTRY_OPEN:
		want_word(ck, "(", E_NAME_KW);
		break;
	case E_NAME_KW:
		want_word(ck, "name", E_NAME);
		break;
	case E_NAME:
		/* Nix refuses these too; here they would be a path
		 * outside the tree */
		if (!ck->str_len || str_is(ck, ".") || str_is(ck, "..") ||
		    memchr(ck->str, '/', ck->str_len) || strlen(ck->str) != ck->str_len)
			malformed(ck, "an entry name that is not a file name");
		else
			ck->expect = E_NODE_KW;
		break;
	case E_NODE_KW:
		if (ck->depth >= EXPORTCHECK_MAX_DEPTH) {
			malformed(ck, "a tree deeper than we take");
			break;
		}
		ck->depth++;
		want_word(ck, "node", E_OPEN);
		break;
	case E_ENTRY_CLOSE:
		ck->depth--;
		want_word(ck, ")", E_DIR_FIELD);
		break;
	case E_PATH: {
		long at;
		if (!str_store_path(ck)) {
			refuse(ck, "its export stream holds '%s', which is not a store path",
			       nrr_printable(shown, sizeof(shown), ck->str));
		} else if ((at = strindex_find(&ck->asked, ck->str)) < 0) {
			refuse(ck, "its export stream holds '%s', which was not asked for",
			       nrr_printable(shown, sizeof(shown), ck->str));
		} else if (ck->seen[at]) {
			refuse(ck, "its export stream holds '%s' twice",
			       nrr_printable(shown, sizeof(shown), ck->str));
		} else {
			ck->seen[at] = 1;
			memcpy(ck->path, ck->str, ck->str_len + 1);
			ck->expect = E_NREFS;
		}
		break;
	}
	case E_REF:
		if (!str_store_path(ck)) {
			refuse(ck, "its export stream gives '%s' a reference that is not a store path: '%s'",
			       ck->path, nrr_printable(shown, sizeof(shown), ck->str));
		} else if (!--ck->refs_left) {
			ck->expect = E_DERIVER;
		}
		break;
	case E_DERIVER:
		if (ck->str_len && !str_store_path(ck))
			refuse(ck, "its export stream gives '%s' a deriver that is not a store path: '%s'",
			       ck->path, nrr_printable(shown, sizeof(shown), ck->str));
		else
			ck->expect = E_SIG;
		break;
	default:
		break;
	}
}

static void number_done(struct exportcheck *ck, unsigned long long v)
{
	switch (ck->expect) {
	case E_ENTRY:
		if (v == 1)
			ck->expect = E_NAR_MAGIC;
		else if (v == 0)
			ck->expect = E_END;
		else
			malformed(ck, "expected the start of an entry or the end");
		break;
	case E_EXPORT_MAGIC:
		if (v == EXPORT_MAGIC)
			ck->expect = E_PATH;
		else
			malformed(ck, "expected the export marker after the NAR");
		break;
	case E_NREFS:
		if (v > MAX_REFS) {
			refuse(ck, "its export stream gives '%s' %llu references", ck->path, v);
			break;
		}
		ck->refs_left = v;
		ck->expect = v ? E_REF : E_DERIVER;
		break;
	case E_SIG:
		/* nix-store --export writes none; a 1 (and a signature)
		 * would be read past what we checked */
		if (v != 0) {
			refuse(ck, "its export stream gives '%s' a signature field of %llu, not 0",
			       ck->path, v);
		} else {
			ck->entries++;
			ck->expect = E_ENTRY;
		}
		break;
	default:
		break;
	}
}

/* The item is read whole: its meaning, then the next item's first part. */
static void item_done(struct exportcheck *ck)
{
	ck->reading = R_NUM;
	ck->num_len = 0;
	if (ck->expect == E_CONTENTS)
		ck->expect = E_CLOSE;
	else
		string_done(ck);
}

/* A length or a number, its 8 bytes read. */
static void num_done(struct exportcheck *ck)
{
	unsigned long long v = serveproto_get_u64(ck->num);
	ck->num_len = 0;
	if (is_u64_item(ck->expect)) {
		number_done(ck, v);
		return;
	}
	if (ck->expect != E_CONTENTS && v > EXPORTCHECK_MAX_STRING) {
		if (ck->expect == E_PATH || ck->expect == E_REF || ck->expect == E_DERIVER)
			refuse(ck, "its export stream holds a store path of %llu bytes", v);
		else
			malformed(ck, "a string longer than we take");
		return;
	}
	ck->left = v;
	/* (not serveproto_padded(v) - v: a hostile file's length may be
	 * near 2^64, where that wraps) */
	ck->pad = (8 - v % 8) % 8;
	ck->str_len = 0;
	if (v)
		ck->reading = ck->expect == E_CONTENTS ? R_SKIP : R_BYTES;
	else
		item_done(ck);
}

size_t exportcheck_feed(struct exportcheck *ck, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	size_t i = 0;

	if (ck->failed)
		return 0;
	while (i < len) {
		/* the byte at i, the first one this round takes, is the one
		 * that is refused if what it ends is */
		size_t at = i;
		if (ck->expect == E_END) {
			refuse(ck, "its export stream goes on after its end marker (byte %llu)",
			       ck->offset);
			return at;
		}
		switch (ck->reading) {
		case R_NUM:
			ck->num[ck->num_len++] = p[i++];
			if (ck->num_len == 8)
				num_done(ck);
			break;
		case R_BYTES:
		case R_SKIP: {
			size_t n = len - i;
			if (n > ck->left)
				n = (size_t)ck->left;
			if (ck->reading == R_BYTES)
				memcpy(ck->str + ck->str_len, p + i, n);
			ck->str_len += ck->reading == R_BYTES ? n : 0;
			ck->left -= n;
			i += n;
			/* a longer run's last byte is the one that ends it */
			at = i - 1;
			ck->offset += n - 1;
			if (!ck->left) {
				if (ck->pad)
					ck->reading = R_PAD;
				else
					item_done(ck);
			}
			break;
		}
		case R_PAD:
			if (p[i++]) {
				malformed(ck, "padding that is not zeros");
				break;
			}
			if (!--ck->pad)
				item_done(ck);
			break;
		}
		if (ck->failed)
			return at;
		ck->offset++;
	}
	return len;
}
