package checkpoint

import (
	"fmt"
	"io"
)

// WriteTorchZipWrapped writes the tensors as torch.save({"epoch": epoch, key:
// OrderedDict(...)}) does: the layout of training checkpoints such as
// open_clip's and HPSv2's ({"state_dict": ...}). Open reads the inner dict
// back when key is "state_dict" or "model".
func WriteTorchZipWrapped(w io.Writer, stem, key string, epoch int64, tensors []NamedTensor) error {
	if key == "" {
		return fmt.Errorf("checkpoint: empty wrapper key")
	}
	return writeTorchZip(w, stem, tensors, func(ts []NamedTensor) []byte {
		inner := torchPickle(ts) // "\x80\x02" OrderedDict(...) "."
		var p pickleBuf
		p.WriteString("\x80\x02}(") // PROTO 2, EMPTY_DICT, MARK
		p.str("epoch")
		p.int(epoch)
		p.str(key)
		p.Write(inner[2 : len(inner)-1])
		p.WriteString("u.") // SETITEMS, STOP
		return p.Bytes()
	})
}
