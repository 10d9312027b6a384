#include <stdio.h>
#include "greet.h"

void greet(const char *who) { printf("Hello, %s, from libgreet\n", who); }
