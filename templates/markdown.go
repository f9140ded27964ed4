package templates

import (
	"bytes"
	"strings"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	east "github.com/yuin/goldmark/extension/ast"
	"github.com/yuin/goldmark/parser"
	"github.com/yuin/goldmark/renderer"
	"github.com/yuin/goldmark/text"
	"github.com/yuin/goldmark/util"
)

// newMarkdown returns the goldmark pipeline for email (inline styles, no
// form controls) or for the status page (headings demoted by two levels).
// Both use GFM, drop raw HTML and unsafe links, and turn images into links.
func newMarkdown(email bool) goldmark.Markdown {
	transformers := []util.PrioritizedValue{util.Prioritized(sanitizer{}, 10)}
	renderers := []util.PrioritizedValue{util.Prioritized(quietHTML{}, 100)}
	if email {
		transformers = append(transformers, util.Prioritized(styler{}, 20))
		renderers = append(renderers, util.Prioritized(emailBlocks{}, 100))
	} else {
		transformers = append(transformers, util.Prioritized(demoter{}, 20))
	}
	return goldmark.New(
		goldmark.WithExtensions(extension.Table, extension.Strikethrough, extension.Linkify, extension.TaskList),
		goldmark.WithParserOptions(parser.WithASTTransformers(transformers...)),
		goldmark.WithRendererOptions(renderer.WithNodeRenderers(renderers...)),
	)
}

// safeURL reports whether a link destination may be kept: relative, or
// http, https, mailto or tel. Escapes and character references are
// resolved and control characters and spaces removed before looking for the
// scheme, as browsers do ("java\tscript:", "jav&#x61;script:").
func safeURL(dest []byte) bool {
	d := strings.Map(func(r rune) rune {
		if r <= ' ' || r == 0x7f {
			return -1
		}
		return r
	}, string(unescape(dest)))
	i := strings.IndexAny(d, ":/?#")
	if i < 0 || d[i] != ':' {
		return true // no scheme: relative
	}
	switch strings.ToLower(d[:i]) {
	case "http", "https", "mailto", "tel":
		return true
	}
	return false
}

// sanitizer drops links with unsafe schemes (keeping their text) and turns
// images into links to the image labelled with the alt text: no remote
// asset is ever loaded from a notice.
type sanitizer struct{}

func (sanitizer) Transform(doc *ast.Document, reader text.Reader, _ parser.Context) {
	src := reader.Source()
	var unwrap []ast.Node
	var images []*ast.Image
	var autos []*ast.AutoLink
	_ = ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		switch n := n.(type) {
		case *ast.Link:
			if !safeURL(n.Destination) {
				unwrap = append(unwrap, n)
			}
		case *ast.AutoLink:
			if !safeURL(n.URL(src)) {
				autos = append(autos, n)
			}
		case *ast.Image:
			images = append(images, n)
		}
		return ast.WalkContinue, nil
	})
	for _, img := range images {
		inLink := false
		for p := img.Parent(); p != nil; p = p.Parent() {
			if _, ok := p.(*ast.Link); ok {
				inLink = true
			}
		}
		if inLink || !safeURL(img.Destination) {
			unwrap = append(unwrap, img)
			continue
		}
		link := ast.NewLink()
		link.Destination = img.Destination
		link.Title = img.Title
		for c := img.FirstChild(); c != nil; {
			next := c.NextSibling()
			link.AppendChild(link, c)
			c = next
		}
		if !link.HasChildren() {
			link.AppendChild(link, ast.NewString(img.Destination))
		}
		img.Parent().ReplaceChild(img.Parent(), img, link)
	}
	for _, n := range unwrap {
		parent := n.Parent()
		for c := n.FirstChild(); c != nil; {
			next := c.NextSibling()
			parent.InsertBefore(parent, n, c)
			c = next
		}
		parent.RemoveChild(parent, n)
	}
	for _, a := range autos {
		s := ast.NewString(a.Label(src))
		a.Parent().ReplaceChild(a.Parent(), a, s)
	}
}

// demoter moves headings down two levels so the status page's own h1 and h2
// stay on top.
type demoter struct{}

func (demoter) Transform(doc *ast.Document, _ text.Reader, _ parser.Context) {
	_ = ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if h, ok := n.(*ast.Heading); ok && entering {
			h.Level = min(h.Level+2, 6)
		}
		return ast.WalkContinue, nil
	})
}

// Inline styles of the email body. Mail clients drop <style> blocks, so
// every element carries its own.
const (
	fontFamily = `-apple-system,BlinkMacSystemFont,'Segoe UI',Roboto,Helvetica,Arial,sans-serif`
	monoFamily = `SFMono-Regular,Menlo,Consolas,'Liberation Mono',monospace`
	styleP     = "margin:0 0 16px 0;font-family:" + fontFamily + ";font-size:16px;line-height:24px;color:#1f2937;"
	styleLink  = "color:#1d4ed8;text-decoration:underline;"
	styleCode  = "font-family:" + monoFamily + ";font-size:14px;background-color:#f3f4f6;padding:1px 4px;border-radius:3px;"
	stylePre   = "margin:0 0 16px 0;padding:12px;background-color:#f3f4f6;border-radius:4px;font-family:" + monoFamily + ";font-size:13px;line-height:20px;color:#111827;white-space:pre-wrap;word-wrap:break-word;"
	styleCell  = "border:1px solid #d1d5db;padding:6px 8px;font-family:" + fontFamily + ";font-size:14px;line-height:20px;color:#1f2937;vertical-align:top;"
)

var headingStyles = [...]string{
	1: "margin:24px 0 12px 0;font-family:" + fontFamily + ";font-size:22px;line-height:28px;font-weight:bold;color:#111827;",
	2: "margin:24px 0 12px 0;font-family:" + fontFamily + ";font-size:19px;line-height:26px;font-weight:bold;color:#111827;",
	3: "margin:20px 0 8px 0;font-family:" + fontFamily + ";font-size:17px;line-height:24px;font-weight:bold;color:#111827;",
	4: "margin:16px 0 8px 0;font-family:" + fontFamily + ";font-size:16px;line-height:24px;font-weight:bold;color:#111827;",
	5: "margin:16px 0 8px 0;font-family:" + fontFamily + ";font-size:15px;line-height:22px;font-weight:bold;color:#374151;",
	6: "margin:16px 0 8px 0;font-family:" + fontFamily + ";font-size:14px;line-height:20px;font-weight:bold;color:#4b5563;",
}

// styler sets the style attribute of every node the HTML renderer emits
// attributes for.
type styler struct{}

func (styler) Transform(doc *ast.Document, _ text.Reader, _ parser.Context) {
	_ = ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		var s string
		switch n := n.(type) {
		case *ast.Paragraph:
			s = styleP
		case *ast.Heading:
			s = headingStyles[min(max(n.Level, 1), 6)]
		case *ast.Blockquote:
			s = "margin:0 0 16px 0;padding:0 0 0 12px;border-left:4px solid #d1d5db;color:#4b5563;"
		case *ast.List:
			s = "margin:0 0 16px 0;padding:0 0 0 24px;font-family:" + fontFamily + ";font-size:16px;line-height:24px;color:#1f2937;"
		case *ast.ListItem:
			s = "margin:0 0 4px 0;"
		case *ast.ThematicBreak:
			s = "border:0;border-top:1px solid #e5e7eb;margin:24px 0;height:0;"
		case *ast.Link, *ast.AutoLink:
			s = styleLink
		case *ast.CodeSpan:
			s = styleCode
		case *ast.Emphasis:
			s = "font-style:italic;"
			if n.Level == 2 {
				s = "font-weight:bold;"
			}
		case *east.Strikethrough:
			s = "text-decoration:line-through;"
		case *east.Table:
			s = "border-collapse:collapse;margin:0 0 16px 0;width:100%;"
		case *east.TableHeader, *east.TableRow:
			s = "margin:0;"
		case *east.TableCell:
			s = styleCell
			switch n.Alignment {
			case east.AlignRight:
				s += "text-align:right;"
			case east.AlignCenter:
				s += "text-align:center;"
			default:
				s += "text-align:left;"
			}
			if _, ok := n.Parent().(*east.TableHeader); ok {
				s += "font-weight:bold;background-color:#f9fafb;"
			}
		default:
			return ast.WalkContinue, nil
		}
		n.SetAttributeString("style", []byte(s))
		return ast.WalkContinue, nil
	})
}

// quietHTML renders raw HTML as nothing at all (goldmark's safe mode leaves
// a comment).
type quietHTML struct{}

func (quietHTML) RegisterFuncs(reg renderer.NodeRendererFuncRegisterer) {
	nothing := func(util.BufWriter, []byte, ast.Node, bool) (ast.WalkStatus, error) {
		return ast.WalkSkipChildren, nil
	}
	reg.Register(ast.KindHTMLBlock, nothing)
	reg.Register(ast.KindRawHTML, nothing)
}

// emailBlocks renders the nodes goldmark emits without attributes: code
// blocks as a styled <pre>, the table header row with a style, and task boxes as characters rather than form
// controls, which mail clients mangle.
type emailBlocks struct{}

func (emailBlocks) RegisterFuncs(reg renderer.NodeRendererFuncRegisterer) {
	code := func(w util.BufWriter, src []byte, n ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		_, _ = w.WriteString(`<pre style="` + stylePre + `">`)
		lines := n.Lines()
		var buf bytes.Buffer
		for i := range lines.Len() {
			seg := lines.At(i)
			buf.Write(seg.Value(src))
		}
		_, _ = w.Write(util.EscapeHTML(bytes.TrimRight(buf.Bytes(), "\n")))
		_, _ = w.WriteString("</pre>\n")
		return ast.WalkSkipChildren, nil
	}
	reg.Register(ast.KindCodeBlock, code)
	reg.Register(ast.KindFencedCodeBlock, code)
	reg.Register(east.KindTableHeader, func(w util.BufWriter, _ []byte, n ast.Node, entering bool) (ast.WalkStatus, error) {
		if entering {
			_, _ = w.WriteString("<thead style=\"margin:0;\">\n<tr style=\"margin:0;\">\n")
			return ast.WalkContinue, nil
		}
		_, _ = w.WriteString("</tr>\n</thead>\n")
		if n.NextSibling() != nil {
			_, _ = w.WriteString("<tbody>\n")
		}
		return ast.WalkContinue, nil
	})
	reg.Register(east.KindTaskCheckBox, func(w util.BufWriter, _ []byte, n ast.Node, entering bool) (ast.WalkStatus, error) {
		if entering {
			if n.(*east.TaskCheckBox).IsChecked {
				_, _ = w.WriteString("&#9745; ")
			} else {
				_, _ = w.WriteString("&#9744; ")
			}
		}
		return ast.WalkContinue, nil
	})
}

// parseMarkdown parses src with md and returns the transformed tree.
func parseMarkdown(md goldmark.Markdown, src []byte) ast.Node {
	return md.Parser().Parse(text.NewReader(src))
}

// renderHTML renders a parsed tree to HTML.
func renderHTML(md goldmark.Markdown, src []byte, doc ast.Node) (string, error) {
	var b bytes.Buffer
	if err := md.Renderer().Render(&b, src, doc); err != nil {
		return "", err
	}
	return b.String(), nil
}
