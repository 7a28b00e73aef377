package loadtest

import (
	"bytes"
	"mime/multipart"
	"strings"
)

// multipartForm is what Config.Multipart bodies are made of: a boundary
// found in no file and no prompt, each file's part header (written once),
// and each prompt's part.
type multipartForm struct {
	contentType string
	fileHeads   [][]byte // "--boundary" and the part's header lines, for file i
	promptParts [][]byte // a whole "prompt" field part, for prompt i
	end         []byte   // "--boundary--"
}

// newMultipartForm writes the parts' headers with mime/multipart, so that
// the bodies are what a browser or curl -F sends.
func newMultipartForm(imgs []Image, prompts []string) *multipartForm {
	boundary := multipart.NewWriter(nil).Boundary() // 30 random bytes in hex
	for clashes(boundary, imgs, prompts) {
		boundary = multipart.NewWriter(nil).Boundary()
	}
	part := func(write func(w *multipart.Writer)) []byte {
		var b bytes.Buffer
		w := multipart.NewWriter(&b)
		w.SetBoundary(boundary) // valid: it is one the package made
		write(w)
		return b.Bytes()
	}
	f := &multipartForm{contentType: "multipart/form-data; boundary=" + boundary}
	for _, im := range imgs {
		// The file name is only informative; a line break would end the header.
		name := strings.NewReplacer("\r", "_", "\n", "_").Replace(im.Name)
		f.fileHeads = append(f.fileHeads, part(func(w *multipart.Writer) { w.CreateFormFile("images", name) }))
	}
	for _, p := range prompts {
		f.promptParts = append(f.promptParts, part(func(w *multipart.Writer) {
			pw, _ := w.CreateFormField("prompt") // writes to a bytes.Buffer: no error
			pw.Write([]byte(p))
		}))
	}
	f.end = []byte("--" + boundary + "--\r\n") // Writer.Close would write the CRLF before it again
	return f
}

// clashes says whether a delimiter line could appear inside a part.
func clashes(boundary string, imgs []Image, prompts []string) bool {
	d := []byte("--" + boundary)
	for _, im := range imgs {
		if bytes.Contains(im.Data, d) {
			return true
		}
	}
	for _, p := range prompts {
		if strings.Contains(p, string(d)) {
			return true
		}
	}
	return false
}

// crlf ends a part's content: the line break belongs to the next delimiter.
var crlf = []byte("\r\n")

// multipartBody is body j as multipart/form-data, the parts the server's
// form reader takes (README, HTTP API): score and rank send prompt j and
// K parts named images; reward sends one prompt field per image, in order.
// The same images and prompts as the JSON body j; the files' bytes are read
// without a copy.
func (p *payloads) multipartBody(j int) *partsReader {
	f, k := p.form, p.k
	parts := make([][]byte, 0, 4*k+3)
	if p.route == RouteReward {
		for t := 0; t < k; t++ {
			parts = append(parts, f.promptParts[(j*k+t)%len(f.promptParts)], crlf)
		}
	} else {
		parts = append(parts, f.promptParts[j%len(f.promptParts)], crlf)
	}
	for t := 0; t < k; t++ {
		i := (j*k + t) % len(f.fileHeads)
		parts = append(parts, f.fileHeads[i], p.files[i], crlf)
	}
	return newPartsReader(append(parts, f.end))
}
