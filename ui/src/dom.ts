// The only way this UI builds DOM: elements from a tag, properties, and children. Strings become text nodes,
// so a value that came from a span (a name, an attribute, a log body) can never be parsed as HTML.

export type Child = Node | string | number | null | undefined | false | Child[];

export interface Props {
  class?: string;
  href?: string;
  title?: string;
  id?: string;
  style?: Partial<CSSStyleDeclaration>;
  dataset?: Record<string, string>;
  attrs?: Record<string, string>;
  on?: { [K in keyof HTMLElementEventMap]?: (event: HTMLElementEventMap[K]) => void };
}

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props | null = null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (props) {
    if (props.class) node.className = props.class;
    if (props.id) node.id = props.id;
    if (props.title !== undefined) node.title = props.title;
    if (props.href !== undefined) node.setAttribute("href", safeHref(props.href));
    if (props.style) Object.assign(node.style, props.style);
    if (props.dataset) Object.assign(node.dataset, props.dataset);
    if (props.attrs) for (const [key, value] of Object.entries(props.attrs)) node.setAttribute(key, value);
    if (props.on) {
      for (const [name, handler] of Object.entries(props.on)) node.addEventListener(name, handler as EventListener);
    }
  }
  append(node, children);
  return node;
}

export function append(parent: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else if (child instanceof Node) parent.appendChild(child);
    else parent.appendChild(document.createTextNode(String(child)));
  }
}

/** Links are built by this UI from ids and names; anything that is not a same-site path is refused. */
export function safeHref(href: string): string {
  return href.startsWith("/") && !href.startsWith("//") ? href : "#";
}

export function clear(node: Element, ...children: Child[]): void {
  node.replaceChildren();
  append(node, children);
}

const SVG_NS = "http://www.w3.org/2000/svg";

export function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number> = {},
  ...children: (SVGElement | string)[]
): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  for (const child of children) node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
  return node;
}
