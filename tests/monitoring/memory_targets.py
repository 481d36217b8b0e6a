"""Functions the memory tests profile (a module of their own, so reports name known lines)."""


def allocate(n):
    blocks = [bytes(1024) for _ in range(n)]  # the allocation the tests look for
    return len(blocks)


kept = []


def leak(n):
    kept.extend(bytes(1024) for _ in range(n))  # memory that outlives the call
    return n


async def aleak(n):
    kept.extend(bytes(2048) for _ in range(n))
    return n
