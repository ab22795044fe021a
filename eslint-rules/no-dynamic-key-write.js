// A typed stand-in for eslint-plugin-security's detect-object-injection, aimed at the sink that makes
// prototype pollution possible: ASSIGNING a property of an object under a key whose type is an open
// `string`. `obj[key] = v` with key = "__proto__" runs the prototype setter instead of storing a field
// (and a merge that recurses into it reaches Object.prototype). Reads, `delete` (own properties only)
// and number-indexed arrays cannot do that. The upstream rule flags every `obj[i]` read, array
// indexing included, which buries the few writes that matter.
//
// Not flagged: keys typed as numbers, string literals (unions), template literal types with a fixed
// part (`x-dip-${string}`) or symbols; arrays and tuples. Still flagged, because the checker cannot
// tell: null-prototype objects and keys already known to be own properties. Such a site gets a
// targeted disable saying where the key comes from, or goes through a guard (setOwn).
import { ESLintUtils } from '@typescript-eslint/utils';
import ts from 'typescript';

/** @param {ts.Type} type */
function isOpenStringKey(type) {
  if (type.isUnion()) return type.types.some(isOpenStringKey);
  const f = type.getFlags();
  if (f & (ts.TypeFlags.Any | ts.TypeFlags.Unknown)) return true;
  if (f & ts.TypeFlags.String) return true; // `string`, not a literal
  // A template literal type (`x-dip-${string}`) has a fixed part, so it is never "__proto__".
  return false;
}

/** @param {ts.Type} type @param {ts.TypeChecker} checker */
function isArrayLike(type, checker) {
  if (type.isUnion()) return type.types.every((t) => isArrayLike(t, checker));
  return checker.isArrayType(type) || checker.isTupleType(type);
}

export default ESLintUtils.RuleCreator.withoutDocs({
  meta: {
    type: 'problem',
    messages: {
      write:
        'Writing a property under an open string key (possible prototype pollution): use a Map, a null-prototype object, or a key checked against a fixed set.',
    },
    schema: [],
  },
  defaultOptions: [],
  create(context) {
    const services = ESLintUtils.getParserServices(context);
    const checker = services.program.getTypeChecker();

    /** @param {import('@typescript-eslint/utils').TSESTree.Node} target */
    function check(target) {
      if (target.type !== 'MemberExpression' || !target.computed) return;
      if (target.property.type === 'Literal') return;
      const keyType = services.getTypeAtLocation(target.property);
      if (!isOpenStringKey(keyType)) return;
      if (isArrayLike(services.getTypeAtLocation(target.object), checker)) return;
      context.report({ node: target, messageId: 'write' });
    }

    return {
      AssignmentExpression(node) {
        check(node.left);
      },
    };
  },
});
