#include "platform.h"

#include <stdio.h>
#include <string.h>

void platform_of_machine(const char *machine, char *out, size_t size)
{
	static const struct { const char *uname, *nix; } alias[] = {
		{ "arm64", "aarch64" }, { "armv8l", "armv7l" },
		{ "i386", "i686" }, { "i486", "i686" }, { "i586", "i686" },
		{ "amd64", "x86_64" },
		/* POWER: Nix spells the cpu out */
		{ "ppc64le", "powerpc64le" }, { "ppc64", "powerpc64" }, { "ppc", "powerpc" },
	};
	const char *cpu = machine;
	for (size_t i = 0; i < sizeof(alias) / sizeof(alias[0]); i++)
		if (!strcmp(machine, alias[i].uname))
			cpu = alias[i].nix;
	snprintf(out, size, "%s-linux", cpu);
}

void platform_of_machine_order(const char *machine, int little, char *out, size_t size)
{
	size_t n = strlen(machine);
	int unordered = !strncmp(machine, "mips", 4) &&
			!(n >= 2 && !strcmp(machine + n - 2, "el"));
	char m[128];

	snprintf(m, sizeof(m), "%s%s", machine, unordered && little ? "el" : "");
	platform_of_machine(m, out, size);
}

/* Past the string that starts at p ('"'), or NULL. */
static const char *skip_string(const char *p, const char *end)
{
	for (p++; p < end; p++) {
		if (*p == '\\')
			p++;
		else if (*p == '"')
			return p + 1;
	}
	return NULL;
}

/* Past the list or tuple that starts at p, nested ones and strings
 * included, or NULL. */
static const char *skip_term(const char *p, const char *end)
{
	int depth = 0;
	while (p && p < end) {
		if (*p == '"') {
			p = skip_string(p, end);
			continue;
		}
		if (*p == '[' || *p == '(')
			depth++;
		else if ((*p == ']' || *p == ')') && --depth == 0)
			return p + 1;
		p++;
	}
	return NULL;
}

int platform_drv_system(const char *text, size_t len, char *out, size_t size)
{
	const char *p = text, *end = text + len;

	if (len < 7 || memcmp(p, "Derive(", 7))
		return -1;
	p += 7;
	for (int field = 0; field < 3; field++) {
		if (p >= end || *p != '[')
			return -1;
		p = skip_term(p, end);
		if (!p || p >= end || *p != ',')
			return -1;
		p++;
	}
	if (p >= end || *p != '"')
		return -1;
	const char *s = ++p;
	while (p < end && *p != '"' && *p != '\\')
		p++;
	if (p >= end || *p != '"' || (size_t)(p - s) >= size || p == s)
		return -1;
	memcpy(out, s, (size_t)(p - s));
	out[p - s] = '\0';
	return 0;
}

int platform_builders_have(const char *builders, const char *system)
{
	size_t slen = strlen(system);
	const char *p = builders;

	while (*p) {
		size_t len = strcspn(p, ";\n");
		const char *l = p, *lend = p + len;
		/* skip the URI, then look at the comma-separated systems */
		while (l < lend && (*l == ' ' || *l == '\t'))
			l++;
		while (l < lend && *l != ' ' && *l != '\t')
			l++;
		while (l < lend && (*l == ' ' || *l == '\t'))
			l++;
		const char *sys_end = l;
		while (sys_end < lend && *sys_end != ' ' && *sys_end != '\t')
			sys_end++;
		for (const char *w = l; w < sys_end;) {
			size_t wl = strcspn(w, ",");
			if (w + wl > sys_end)
				wl = (size_t)(sys_end - w);
			if (wl == slen && !memcmp(w, system, slen))
				return 1;
			w += wl + 1;
		}
		p += len + (p[len] ? 1 : 0);
	}
	return 0;
}
