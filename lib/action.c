#include "action.h"

#include <string.h>

#define ROW(fn, name, needs, attr, help) { name, needs, attr, help },
const struct action action_table[] = {
	NRR_ACTIONS(ROW)
	{ NULL, 0, NULL, NULL },
};
#undef ROW

const struct action *action_find(const char *name)
{
	for (const struct action *a = action_table; a->name; a++) {
		if (strcmp(a->name, name))
			continue;
		while (a->needs & AN_ALIAS && a > action_table)
			a--;
		return a;
	}
	return NULL;
}

void action_list(struct strbuf *sb, unsigned needs, int quote)
{
	const char *q = quote ? "'" : "";
	size_t n = 0, total = 0;

	for (const struct action *a = action_table; a->name; a++)
		if (!(a->needs & AN_ALIAS) && (a->needs & needs) == needs)
			total++;
	for (const struct action *a = action_table; a->name; a++) {
		if (a->needs & AN_ALIAS || (a->needs & needs) != needs)
			continue;
		if (n)
			strbuf_addstr(sb, n + 1 == total ? " and " : ", ");
		strbuf_addf(sb, "%s%s%s", q, a->name, q);
		n++;
	}
}

void action_print_help(FILE *fp)
{
	fputs("Actions:\n", fp);
	for (const struct action *a = action_table; a->name; a++)
		if (a->help)
			fprintf(fp, "  %-16s  %s\n", a->name, a->help);
}
