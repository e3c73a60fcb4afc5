/*-------------------------------------------------------------------------
 *
 * chain_fold.c
 *	  The state a receipt chain gives: its first payload as later receipts
 *	  changed it.
 *
 * The row of a conversion is always the fold of its chain.  The lifecycle
 * commands compare a new row with it and verify_all checks every row
 * against it, so it belongs to the ledger, which defines what a chain
 * means, and not to the commands that append to one.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/jsonb.h"

#include "fp_attribution/chain_fold.h"

/*
 * The state after event: state (NULL: none yet, event is the first
 * receipt's payload) whose members other than "event" take the value
 * event gives them; other members of event are not state.  Allocated in
 * cxt.  A payload that is not an object changes nothing (verification
 * then reports the row's difference).
 */
Jsonb *
fp_attribution_fold_event(MemoryContext cxt, Jsonb *state, Jsonb *event)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	JsonbParseState *ps = NULL;
	JsonbIterator *it;
	JsonbIteratorToken tok;
	JsonbValue	key;
	JsonbValue	value;
	JsonbValue *result = NULL;
	Jsonb	   *folded;

	if (state == NULL || !JB_ROOT_IS_OBJECT(state) || !JB_ROOT_IS_OBJECT(event))
	{
		Jsonb	   *src = state != NULL ? state : event;

		folded = palloc(VARSIZE(src));
		memcpy(folded, src, VARSIZE(src));
		MemoryContextSwitchTo(old);
		return folded;
	}
	it = JsonbIteratorInit(&state->root);
	while ((tok = JsonbIteratorNext(&it, &key, true)) != WJB_DONE)
	{
		JsonbValue *changed = NULL;

		if (tok != WJB_KEY)
		{
			result = pushJsonbValue(&ps, tok, NULL);
			continue;
		}
		pushJsonbValue(&ps, WJB_KEY, &key);
		tok = JsonbIteratorNext(&it, &value, true);
		Assert(tok == WJB_VALUE);
		if (key.val.string.len != strlen("event") ||
			memcmp(key.val.string.val, "event", key.val.string.len) != 0)
			changed = getKeyJsonValueFromContainer(&event->root,
												   key.val.string.val,
												   key.val.string.len, NULL);
		pushJsonbValue(&ps, WJB_VALUE, changed != NULL ? changed : &value);
	}
	folded = JsonbValueToJsonb(result);
	MemoryContextSwitchTo(old);
	return folded;
}
