"""Patient-controlled, encrypted health records anchored on a permissioned EVM chain."""
