UPDATE t SET a = a::int + -- c
 1 WHERE b <>/*x*/ 2