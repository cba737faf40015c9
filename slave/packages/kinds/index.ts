// The package kinds a slave knows, by name.
import type { PackageKind } from '../../../common/types.ts';
import { eggKind } from './egg.ts';
import { genericKind } from './generic.ts';
import type { PackageKindHandler } from './kind.ts';

const KINDS: Record<PackageKind, PackageKindHandler> = { 'scrapy-egg': eggKind, generic: genericKind };

export function kindOf(name: PackageKind): PackageKindHandler { return KINDS[name]; }
