/**
 * What the agent needs from a libvirt domain XML (https://libvirt.org/formatdomain.html):
 *   <metadata><wattsplit:vm xmlns:wattsplit="https://wattsplit.dev/xmlns/vm/1"><tenant>t</tenant><flavor>f</flavor></wattsplit:vm></metadata>
 *   <hostdev mode='subsystem' type='pci'><source><address domain='0x0000' bus='0x17' slot='0x00' function='0x0'/></source></hostdev>
 *   <interface type='bridge'>...<target dev='vnet0'/>...</interface>
 * A small purpose-built reader (no XML dependency): libvirt writes this XML itself, in a stable shape.
 */
export const WATTSPLIT_XMLNS = 'https://wattsplit.dev/xmlns/vm/1';

export interface DomainXmlFacts {
  tenant: string;
  flavor: string;
  gpuPciAddresses: string[];
  taps: string[];
}

function unescapeXml(s: string): string {
  return s.replace(/&(lt|gt|amp|quot|apos|#\d+|#x[0-9a-fA-F]+);/g, (_m, e: string) => {
    switch (e) {
      case 'lt':
        return '<';
      case 'gt':
        return '>';
      case 'amp':
        return '&';
      case 'quot':
        return '"';
      case 'apos':
        return "'";
      default:
        return String.fromCodePoint(e.startsWith('#x') ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
    }
  });
}

function attr(tag: string, name: string): string | undefined {
  const m = new RegExp(`\\s${name}\\s*=\\s*(['"])(.*?)\\1`).exec(tag);
  return m ? unescapeXml(m[2] ?? '') : undefined;
}

function hexPart(v: string | undefined, width: number): string {
  const n = v === undefined ? 0 : Number(v.startsWith('0x') ? parseInt(v, 16) : parseInt(v, 10));
  return n.toString(16).padStart(width, '0');
}

export function parseDomainXml(xml: string): DomainXmlFacts {
  const facts: DomainXmlFacts = { tenant: '', flavor: '', gpuPciAddresses: [], taps: [] };
  // metadata element in our namespace, whatever prefix libvirt kept
  const ns = new RegExp(`<([A-Za-z_][\\w.-]*):vm\\b[^>]*xmlns:\\1\\s*=\\s*(['"])${WATTSPLIT_XMLNS.replace(/[/.]/g, '\\$&')}\\2[^>]*>([\\s\\S]*?)</\\1:vm>`).exec(xml);
  if (ns) {
    const prefix = ns[1] ?? '';
    const body = ns[3] ?? '';
    const field = (name: string) => {
      const m = new RegExp(`<(?:${prefix}:)?${name}>([\\s\\S]*?)</(?:${prefix}:)?${name}>`).exec(body);
      return m ? unescapeXml((m[1] ?? '').trim()) : '';
    };
    facts.tenant = field('tenant');
    facts.flavor = field('flavor');
  }
  for (const m of xml.matchAll(/<hostdev\b([^>]*)>([\s\S]*?)<\/hostdev>/g)) {
    if (attr(m[1] ?? '', 'type') !== 'pci') continue;
    const src = /<source\b[^>]*>([\s\S]*?)<\/source>/.exec(m[2] ?? '');
    const addr = /<address\b[^>]*\/?>/.exec(src?.[1] ?? '');
    if (!addr) continue;
    const a = addr[0];
    facts.gpuPciAddresses.push(`${hexPart(attr(a, 'domain'), 4)}:${hexPart(attr(a, 'bus'), 2)}:${hexPart(attr(a, 'slot'), 2)}.${hexPart(attr(a, 'function'), 1)}`);
  }
  for (const m of xml.matchAll(/<interface\b[^>]*>([\s\S]*?)<\/interface>/g)) {
    const t = /<target\b[^>]*\/?>/.exec(m[1] ?? '');
    const dev = t ? attr(t[0], 'dev') : undefined;
    if (dev) facts.taps.push(dev);
  }
  return facts;
}
