package config

import (
	"slices"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
)

// ImagePolicy is an image_policy block: the signature a component's image
// must carry before it runs. Given on the pipeline it applies to every
// component that names no policy of its own.
//
//	image_policy {
//	  require_signature = true
//	  public_key        = "cosign.pub"
//	}
//
// In YAML the same map is spec.image_policy or a component's image_policy.
type ImagePolicy struct {
	// RequireSignature: the image must carry a cosign signature (the
	// sha256-<digest>.sig artifact) that PublicKey verifies.
	RequireSignature bool `json:"require_signature,omitempty"`
	// PublicKey is the path of a PEM public key (cosign.pub), relative to
	// the pipeline file's folder.
	PublicKey string `json:"public_key,omitempty"`
}

// imagePolicySchema is the HCL body of an image_policy block.
var imagePolicySchema = &hcl.BodySchema{Attributes: attrSchemas("require_signature", "public_key")}

// ylImagePolicyKeys are the keys of an image_policy map.
var ylImagePolicyKeys = []string{"require_signature", "public_key"}

// decodeImagePolicy reads an image_policy block; prefix is "" for the
// pipeline's, the attribute prefix of a component's.
func (l *hclLoader) decodeImagePolicy(o *hclOwner, b *hcl.Block) *ImagePolicy {
	o.ranges["image_policy"] = b.DefRange
	content, diags := b.Body.Content(imagePolicySchema)
	l.diags = append(l.diags, diags...)
	ip := &ImagePolicy{}
	l.getBool(o, content.Attributes, "require_signature", "image_policy.require_signature", &ip.RequireSignature)
	l.getString(o, content.Attributes, "public_key", "image_policy.public_key", &ip.PublicKey)
	return ip
}

// imagePolicyBlock decodes the one image_policy block among blocks, if any.
func (l *hclLoader) imagePolicyBlock(o *hclOwner, blocks hcl.Blocks) *ImagePolicy {
	var ips []*hcl.Block
	for _, blk := range blocks {
		if blk.Type == "image_policy" {
			ips = append(ips, blk)
		}
	}
	if b := l.single(o, ips); b != nil {
		return l.decodeImagePolicy(o, b)
	}
	return nil
}

// imagePolicy reads an image_policy map of spec (who "") or a component.
func (l *yamlLoader) imagePolicy(ranges map[string]hcl.Range, who, at string, e ylEntry) *ImagePolicy {
	ranges["image_policy"] = l.rng(l.deref(e.v))
	m := l.mapping(e.v, who, at, "a map")
	if m == nil {
		return nil
	}
	es := l.fields(m, who, at, ylImagePolicyKeys)
	ip := &ImagePolicy{}
	if e, ok := es["require_signature"]; ok {
		ip.RequireSignature, _ = l.boolean(e.v, who, at+".require_signature")
		ranges["image_policy.require_signature"] = l.rng(l.deref(e.v))
	}
	if e, ok := es["public_key"]; ok {
		ip.PublicKey, _ = l.str(e.v, who, at+".public_key")
		ranges["image_policy.public_key"] = l.rng(l.deref(e.v))
	}
	return ip
}

// normalizeImagePolicy gives a component that runs an image the
// pipeline's policy when it states none. A policy that asks nothing is no
// policy, unless it overrides the pipeline's.
func normalizeImagePolicy(p *Pipeline, c *Component) {
	if p.ImagePolicy != nil && *p.ImagePolicy == (ImagePolicy{}) {
		p.ImagePolicy = nil
	}
	if c.ImagePolicy == nil && p.ImagePolicy != nil && c.Image != "" {
		cp := *p.ImagePolicy
		c.ImagePolicy = &cp
	}
	if c.ImagePolicy != nil && *c.ImagePolicy == (ImagePolicy{}) && p.ImagePolicy == nil {
		c.ImagePolicy = nil
	}
}

// SignaturePolicy returns the component's policy when it requires a
// signature, else nil.
func (c *Component) SignaturePolicy() *ImagePolicy {
	if c.ImagePolicy != nil && c.ImagePolicy.RequireSignature {
		return c.ImagePolicy
	}
	return nil
}

// RunsImageAsProcess reports whether the process executor runs the
// component from an image: it names an image (or a registry type) and no
// command.
func (c *Component) RunsImageAsProcess() bool {
	return c.Executor == "process" && c.Image != "" && len(c.Command) == 0
}

// executorsWithSignatures are the executors that verify image signatures.
var executorsWithSignatures = []string{"process", "docker"}

// validateImagePolicy checks a component's image_policy.
func validateImagePolicy(c *Component) hcl.Diagnostics {
	diags := validateProcessImage(c)
	ip := c.ImagePolicy
	if ip == nil {
		return diags
	}
	switch {
	case ip.RequireSignature && ip.PublicKey == "":
		diags = append(diags, compErr(c, "image_policy", "Missing public key", "image_policy requires a signature and names no public_key to verify it with (keyless verification needs the internet and is not supported)"))
	case ip.RequireSignature && !slices.Contains(executorsWithSignatures, c.Executor):
		diags = append(diags, compErr(c, "image_policy", "Signatures on the "+c.Executor+" executor", "image signatures are verified on the process and docker executors; the %s executor cannot verify them", c.Executor))
	case ip.RequireSignature && c.Image == "":
		diags = append(diags, compErr(c, "image_policy", "Signature without image", "image_policy requires a signed image, and this component runs a command"))
	}
	return diags
}

// validateProcessImage checks what the process executor cannot take from
// an image: image_id is a Docker engine's image ID.
func validateProcessImage(c *Component) hcl.Diagnostics {
	if c.RunsImageAsProcess() && c.ImageID != "" {
		return hcl.Diagnostics{compErr(c, "image_id", "image_id on the process executor", "image_id pins an image of the Docker engine; on the process executor pin the image by digest (image = \"name@sha256:...\")")}
	}
	return nil
}

// ownImagePolicy is the policy a writer states on c: nil when c's is the
// pipeline's (inherited).
func ownImagePolicy(p *Pipeline, c *Component) *ImagePolicy {
	if c.ImagePolicy == nil || (p.ImagePolicy != nil && *p.ImagePolicy == *c.ImagePolicy) {
		return nil
	}
	return c.ImagePolicy
}

// writeHCLImagePolicy appends an image_policy block for ip, if any.
func writeHCLImagePolicy(b *hclwrite.Body, ip *ImagePolicy) {
	if ip == nil {
		return
	}
	ib := b.AppendNewBlock("image_policy", nil).Body()
	if ip.RequireSignature {
		ib.SetAttributeValue("require_signature", cty.True)
	}
	setString(ib, "public_key", ip.PublicKey)
}

// yamlImagePolicy sets an image_policy map for ip, if any.
func yamlImagePolicy(m *yamlMap, ip *ImagePolicy) {
	if ip == nil {
		return
	}
	im := newMap()
	if ip.RequireSignature {
		im.bool("require_signature", true)
	}
	im.strOpt("public_key", ip.PublicKey)
	m.set("image_policy", im.node)
}
