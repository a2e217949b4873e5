/* FFE goal planning: decomposes a goal into 3 to 7 ordered atomic blocks of
 * 15 to 120 minutes, deterministically (the same input always gives the same
 * plan). The method, step by step:
 *
 *  1. Clauses. The description is cut into sentences (at . ! ? ; newlines
 *     and list bullets), and each sentence at sequencing words ("then",
 *     "after that", "finally", ...) and at commas and "and" when the next
 *     word is an action verb ("research competitors, draft the outline and
 *     write the report" gives three clauses; "review and edit the draft"
 *     stays one). Leading fillers ("first", "I need to", ...) are dropped;
 *     each clause keeps its position: text order is the blocks' order.
 *  2. Weights. A clause weighs (1 + min(words, 30) / 10) times its verb's
 *     factor: 2.0 for making verbs (write, build, design, research, ...), 0.6
 *     for quick ones (send, call, book, check, ...), 1.0 otherwise.
 *  3. Block count. Complexity gives a range (simple 3-4, medium 4-6, complex
 *     5-7) and the count is the number of clauses clamped to it; available
 *     hours, when given, then bound it again so that every block can be 15
 *     to 120 minutes (at least ceil(minutes / 120), at most
 *     floor(minutes / 15)), always within 3 to 7.
 *  4. Shaping. Too many clauses: the adjacent pair with the smallest
 *     combined weight is merged, repeatedly. Too few: a closing "Review and
 *     wrap up" block (weight 0.5) is added, then an opening "Prepare" block
 *     (0.5), then the heaviest work block is split into parts, repeatedly.
 *  5. Minutes. With available hours, the minutes are shared in proportion
 *     to weight, each share clamped to 15..120 with the excess redistributed
 *     among the others (water filling), then rounded down to 5 minutes with
 *     the leftover 5-minute units going to the largest remainders (earlier
 *     blocks win ties); when the hours cannot all fit in 7 blocks of 120
 *     minutes, or are fewer than 3 blocks of 15, the plan says so (fits = 0).
 *     Without hours, each block is estimated from its weight alone: 25, 35
 *     or 45 minutes per unit of weight (simple, medium, complex), rounded to
 *     5 and clamped to 15..120.
 */
#ifndef AIPAL_WORKER_PLANNER_H
#define AIPAL_WORKER_PLANNER_H

#include <stddef.h>

#define PLAN_MIN_BLOCKS  3
#define PLAN_MAX_BLOCKS  7
#define PLAN_MIN_MINUTES 15
#define PLAN_MAX_MINUTES 120
#define PLAN_DESC_SIZE   320

typedef struct plan_block {
    char description[PLAN_DESC_SIZE];
    const char *kind; /* "prepare", "work" or "review" */
    double weight;
    int minutes;
} plan_block;

typedef struct plan_result {
    int nblocks;
    plan_block blocks[PLAN_MAX_BLOCKS];
    int clauses;           /* action clauses found in the text */
    int available_minutes; /* the hours given, in minutes; 0: none given */
    int planned_minutes;   /* sum of the blocks */
    int fits;              /* 1 when planned equals available (to 5 minutes) */
} plan_result;

/* Plans a goal. `title` may be NULL (the first clause names the goal);
 * `complexity` is "simple", "medium" or "complex" (NULL: medium);
 * available_hours <= 0 means none given (estimate from the text alone). Returns 0, or -1
 * with a reason in err (errlen bytes) when the description has no words or
 * the complexity is unknown. */
int plan_goal(const char *title, const char *description, const char *complexity,
              double available_hours, plan_result *out, char *err, size_t errlen);

#endif
