"""Operations: what makes the graph run itself every night, guarded, watched, and heard from."""
