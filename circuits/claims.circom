pragma circom 2.1.0;

// One claim of one record, committed on chain, and a predicate over it proven without revealing it.
//
// The claim is (kind, code, unit, value, date); the commitment is
//   Poseidon(recordHi, recordLo, kind, code, unit, value, date, salt)
// so it names its record (the record id's two 128-bit halves) and hides the claim behind a salt
// only readers of the record can derive. The predicate is the conjunction of every public bound:
// the claim's kind, a unit (0 = any), value in [valueLo, valueHi], date in [dateLo, dateHi], and,
// when codeCheck is 1, code equal to one of `codes`. `binding` ties the proof to one verifier
// (it enters no other constraint; it is squared so it is part of the proof in any prover).
//
// Ranges: value < 2^48 (quantity x 1000, offset by 2^47), date < 2^32 (YYYYMMDD). Every compared
// signal is decomposed into bits first, so no comparison can wrap around the field.

include "circomlib/circuits/poseidon.circom";
include "circomlib/circuits/comparators.circom";
include "circomlib/circuits/bitify.circom";

template Bounded(n) {
    signal input x;
    signal input lo;
    signal input hi;
    component bits[3];
    bits[0] = Num2Bits(n);
    bits[0].in <== x;
    bits[1] = Num2Bits(n);
    bits[1].in <== lo;
    bits[2] = Num2Bits(n);
    bits[2].in <== hi;
    component above = LessEqThan(n);
    above.in[0] <== lo;
    above.in[1] <== x;
    above.out === 1;
    component below = LessEqThan(n);
    below.in[0] <== x;
    below.in[1] <== hi;
    below.out === 1;
}

template ClaimPredicate(SET) {
    signal input commitment;
    signal input recordHi;
    signal input recordLo;
    signal input binding;
    signal input kind;
    signal input unit;
    signal input valueLo;
    signal input valueHi;
    signal input dateLo;
    signal input dateHi;
    signal input codeCheck;
    signal input codes[SET];

    signal input code;
    signal input claimUnit;
    signal input value;
    signal input date;
    signal input salt;

    component hash = Poseidon(8);
    hash.inputs[0] <== recordHi;
    hash.inputs[1] <== recordLo;
    hash.inputs[2] <== kind;
    hash.inputs[3] <== code;
    hash.inputs[4] <== claimUnit;
    hash.inputs[5] <== value;
    hash.inputs[6] <== date;
    hash.inputs[7] <== salt;
    hash.out === commitment;

    unit * (unit - claimUnit) === 0;

    component valueRange = Bounded(48);
    valueRange.x <== value;
    valueRange.lo <== valueLo;
    valueRange.hi <== valueHi;

    component dateRange = Bounded(32);
    dateRange.x <== date;
    dateRange.lo <== dateLo;
    dateRange.hi <== dateHi;

    codeCheck * (codeCheck - 1) === 0;
    signal product[SET + 1];
    product[0] <== 1;
    for (var i = 0; i < SET; i++) {
        product[i + 1] <== product[i] * (code - codes[i]);
    }
    codeCheck * product[SET] === 0;

    signal bindingSquare;
    bindingSquare <== binding * binding;
}

component main {public [commitment, recordHi, recordLo, binding, kind, unit, valueLo, valueHi, dateLo, dateHi, codeCheck, codes]} = ClaimPredicate(8);
