#define _GNU_SOURCE
#include "progress.h"
#include "fiber.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Nix's activity and result types (logging.hh); stable since Nix 2.0. */
enum { ACT_FILE_TRANSFER = 101, ACT_BUILDS = 104, ACT_BUILD = 105,
       ACT_SUBSTITUTE = 108, ACT_COPY_PATHS = 103 };
enum { RES_BUILD_LOG_LINE = 101, RES_PROGRESS = 105, RES_POST_BUILD_LOG = 107 };

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

void progress_init(struct progress *p, int fd, int tty, int print_logs,
		   int verbose)
{
	memset(p, 0, sizeof(*p));
	strbuf_init(&p->line);
	strbuf_init(&p->plain);
	p->fd = fiber_std_fd(fd);	/* a fiber's stderr is its own */
	p->tty = tty;
	p->print_logs = print_logs;
	p->verbose = verbose;
	p->start = now_s();
	const char *nc = getenv("NO_COLOR");
	p->no_color = nc && *nc;
}

static void out(struct progress *p, const char *s, size_t n)
{
	if (p->fd >= 0 && write(p->fd, s, n) < 0) {
		/* nowhere to show it: the plain text keeps it */
	}
}

static void clear_status(struct progress *p)
{
	if (p->status_shown)
		out(p, "\r\033[K", 4);
	p->status_shown = 0;
}

static void draw_status(struct progress *p, int force)
{
	double t = now_s();
	if (!p->tty || (!force && t - p->last_draw < 0.1))
		return;
	char buf[320];
	int n = snprintf(buf, sizeof(buf), "\r\033[K[%llu/%llu built, %llu running",
			 p->builds_done, p->builds_expected, p->builds_running);
	if (p->downloads_expected)
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, ", %llu/%llu fetched",
			      p->downloads_done, p->downloads_expected);
	if (p->builds_failed)
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, ", %llu failed",
			      p->builds_failed);
	n += snprintf(buf + n, sizeof(buf) - (size_t)n, "] %s %.1fs",
		      p->current, t - p->start);
	if (n > (int)sizeof(buf) - 1)
		n = (int)sizeof(buf) - 1;
	out(p, buf, (size_t)n);
	p->status_shown = 1;
	p->last_draw = t;
}

/* s without terminal escapes (nix colours its messages). Caller frees. */
static char *strip_ansi(const char *s)
{
	struct strbuf sb = STRBUF_INIT;
	for (; *s; s++) {
		if (*s == '\033' && s[1] == '[') {
			s += 2;
			while (*s && !(*s >= '@' && *s <= '~'))
				s++;
			if (!*s)
				break;
			continue;
		}
		strbuf_addch(&sb, *s);
	}
	return strbuf_detach(&sb);
}

/* A line for the user: above the status line, and into the plain text. */
static void say(struct progress *p, const char *s)
{
	char *bare = strip_ansi(s);
	const char *shown = p->tty && !p->no_color ? s : bare;
	clear_status(p);
	out(p, shown, strlen(shown));
	out(p, "\n", 1);
	strbuf_addstr(&p->plain, bare);
	strbuf_addch(&p->plain, '\n');
	free(bare);
}

static struct progress_build *find(struct progress *p, unsigned long long id)
{
	for (size_t i = 0; i < p->nacts; i++)
		if (p->acts[i].id == id)
			return &p->acts[i];
	return NULL;
}

/* "building '/nix/store/hash-name.drv'..." -> "name" */
static char *short_name(const char *text)
{
	const char *s = strstr(text, "/nix/store/");
	if (!s)
		return xstrdup(text);
	s += 11;
	const char *dash = strchr(s, '-');
	if (dash)
		s = dash + 1;
	size_t n = strcspn(s, "'");
	if (n > 4 && !strncmp(s + n - 4, ".drv", 4))
		n -= 4;
	return xstrndup(s, n);
}

static void on_start(struct progress *p, cJSON *j)
{
	cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
	cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
	cJSON *text = cJSON_GetObjectItemCaseSensitive(j, "text");
	cJSON *level = cJSON_GetObjectItemCaseSensitive(j, "level");
	const char *t = cJSON_IsString(text) ? text->valuestring : "";
	if (!cJSON_IsNumber(id) || !cJSON_IsNumber(type))
		return;
	if (p->nacts == p->alloc) {
		p->alloc = p->alloc ? p->alloc * 2 : 16;
		p->acts = xrealloc(p->acts, p->alloc * sizeof(*p->acts));
	}
	struct progress_build *b = &p->acts[p->nacts++];
	b->id = (unsigned long long)id->valuedouble;
	b->type = type->valueint;
	b->name = short_name(t);
	strbuf_init(&b->log);
	if (b->type == ACT_BUILD || b->type == ACT_SUBSTITUTE) {
		snprintf(p->current, sizeof(p->current), "%s", b->name);
		if (!p->tty && *t)
			say(p, t);
	} else if (*t && cJSON_IsNumber(level) && level->valueint <= 3 + p->verbose &&
		   b->type == 0 && p->verbose) {
		say(p, t);
	}
}

static void on_stop(struct progress *p, cJSON *j)
{
	cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
	if (!cJSON_IsNumber(id))
		return;
	struct progress_build *b = find(p, (unsigned long long)id->valuedouble);
	if (!b)
		return;
	/* nix says a build failed after it stopped: keep its log a while */
	if (b->log.len) {
		struct progress_build *old = &p->ended[p->nended % PROGRESS_ENDED];
		if (p->nended >= PROGRESS_ENDED) {
			free(old->name);
			strbuf_release(&old->log);
		}
		*old = *b;
		p->nended++;
	} else {
		free(b->name);
		strbuf_release(&b->log);
	}
	*b = p->acts[--p->nacts];
}

static void on_result(struct progress *p, cJSON *j)
{
	cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
	cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
	cJSON *fields = cJSON_GetObjectItemCaseSensitive(j, "fields");
	if (!cJSON_IsNumber(id) || !cJSON_IsNumber(type) || !cJSON_IsArray(fields))
		return;
	struct progress_build *b = find(p, (unsigned long long)id->valuedouble);
	if ((type->valueint == RES_BUILD_LOG_LINE ||
	     type->valueint == RES_POST_BUILD_LOG) && b) {
		cJSON *l = cJSON_GetArrayItem(fields, 0);
		if (!cJSON_IsString(l))
			return;
		strbuf_addf(&b->log, "%s> %s\n", b->name, l->valuestring);
		/* keep the tail only */
		size_t lines = 0, i = b->log.len;
		while (i > 0)
			if (b->log.buf[--i] == '\n' && ++lines > PROGRESS_LOG_TAIL) {
				i++;
				break;
			}
		if (i > 0) {
			memmove(b->log.buf, b->log.buf + i, b->log.len - i);
			strbuf_setlen(&b->log, b->log.len - i);
		}
		if (p->print_logs) {
			char *s = xstrfmt("%s> %s", b->name, l->valuestring);
			say(p, s);
			free(s);
		}
	} else if (type->valueint == RES_PROGRESS && b &&
		   (b->type == ACT_BUILDS || b->type == ACT_COPY_PATHS)) {
		unsigned long long v[4] = { 0 };
		for (int i = 0; i < 4; i++) {
			cJSON *f = cJSON_GetArrayItem(fields, i);
			if (cJSON_IsNumber(f))
				v[i] = (unsigned long long)f->valuedouble;
		}
		if (b->type == ACT_BUILDS) {
			p->builds_done = v[0];
			p->builds_expected = v[1];
			p->builds_running = v[2];
			p->builds_failed = v[3];
		} else {
			p->downloads_done = v[0];
			p->downloads_expected = v[1];
		}
	}
}

/* A failed build's whole log tail, once, before nix's error about it. */
static void show_log_of(struct progress *p, struct progress_build *b,
			const char *msg)
{
	if (b->log.len && strstr(msg, b->name)) {
		clear_status(p);
		out(p, b->log.buf, b->log.len);
		strbuf_add(&p->plain, b->log.buf, b->log.len);
		strbuf_reset(&b->log);
	}
}

static void show_failed_log(struct progress *p, const char *msg)
{
	if (p->print_logs)
		return;
	for (size_t i = 0; i < p->nacts; i++)
		show_log_of(p, &p->acts[i], msg);
	for (size_t i = 0; i < p->nended && i < PROGRESS_ENDED; i++)
		show_log_of(p, &p->ended[i], msg);
}

static void on_line(struct progress *p, const char *l)
{
	if (strncmp(l, "@nix ", 5)) {
		say(p, l);	/* not for us: as nix said it */
		return;
	}
	cJSON *j = cJSON_Parse(l + 5);
	cJSON *action = cJSON_GetObjectItemCaseSensitive(j, "action");
	if (!cJSON_IsString(action)) {
		say(p, l);
	} else if (!strcmp(action->valuestring, "start")) {
		on_start(p, j);
	} else if (!strcmp(action->valuestring, "stop")) {
		on_stop(p, j);
	} else if (!strcmp(action->valuestring, "result")) {
		on_result(p, j);
	} else if (!strcmp(action->valuestring, "msg")) {
		cJSON *msg = cJSON_GetObjectItemCaseSensitive(j, "msg");
		cJSON *level = cJSON_GetObjectItemCaseSensitive(j, "level");
		int lv = cJSON_IsNumber(level) ? level->valueint : 0;
		if (cJSON_IsString(msg)) {
			if (lv == 0)
				show_failed_log(p, msg->valuestring);
			if (lv <= 3 + p->verbose)
				say(p, msg->valuestring);
			else {
				char *bare = strip_ansi(msg->valuestring);
				strbuf_addf(&p->plain, "%s\n", bare);
				free(bare);
			}
		}
	} else {
		say(p, l);
	}
	cJSON_Delete(j);
}

static void take_line(void *data, char *line)
{
	on_line(data, line);
}

void progress_feed(struct progress *p, const char *buf, size_t len)
{
	strbuf_add(&p->line, buf, len);
	strbuf_take_lines(&p->line, take_line, p);
	draw_status(p, 0);
}

void progress_finish(struct progress *p)
{
	if (p->line.len) {
		on_line(p, p->line.buf);
		strbuf_reset(&p->line);
	}
	clear_status(p);
}

void progress_release(struct progress *p)
{
	for (size_t i = 0; i < p->nacts; i++) {
		free(p->acts[i].name);
		strbuf_release(&p->acts[i].log);
	}
	for (size_t i = 0; i < p->nended && i < PROGRESS_ENDED; i++) {
		free(p->ended[i].name);
		strbuf_release(&p->ended[i].log);
	}
	free(p->acts);
	strbuf_release(&p->line);
	strbuf_release(&p->plain);
}
